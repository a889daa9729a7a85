# inboxd for deployments that bring their own Postgres (see docker-compose.yml).
#   docker build -t inboxd .
#   docker run -e DATABASE_URL=postgres://… -p 50051:50051 -p 9464:9464 inboxd

# Build: the README's install command (npm ci refuses this lockfile: npm 11 leaves other
# platforms' optional @bufbuild/buf binaries out of it), then the build of the server, the CLI and
# the workspace packages they import (@inboxd/proto, @inboxd/sdk), then dev dependencies go.
# bench/, examples/ and test/ never enter the image.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY proto/package.json ./proto/
COPY sdk/package.json ./sdk/
RUN npm install --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json tsconfig.build.json buf.gen.yaml ./
COPY proto ./proto
COPY sdk ./sdk
COPY server ./server
COPY cli ./cli
COPY workers ./workers
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Run: the built server and CLI only, as the unprivileged `node` user.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    INBOXD_HOST=0.0.0.0 \
    INBOXD_PORT=50051 \
    INBOXD_METRICS_PORT=9464 \
    INBOXD_LOG_FORMAT=json \
    INBOXD_DATA_DIR=/app/.inboxd/postgres \
    INBOXD_ADDRESS=127.0.0.1:50051
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The workspace packages node_modules/@inboxd links to: their manifests and builds (and the .proto
# files, which reflection serves).
COPY --from=build /app/proto/package.json ./proto/
COPY --from=build /app/proto/dist ./proto/dist
COPY --from=build /app/proto/inboxd ./proto/inboxd
COPY --from=build /app/sdk/package.json ./sdk/
COPY --from=build /app/sdk/dist ./sdk/dist
# Only for an image run without DATABASE_URL: the embedded Postgres keeps its data here.
RUN mkdir -p /app/.inboxd && chown node:node /app/.inboxd
USER node
EXPOSE 50051 9464
# The standard gRPC health service, through the CLI (`inboxd health`: exit 0 when SERVING).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "dist/cli/main.js", "health", "--timeout", "3s"]
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=16", "dist/cli/main.js", "serve"]
