# inboxd for deployments that bring their own Postgres (see docker-compose.yml).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json buf.gen.yaml ./
COPY proto ./proto
COPY sdk ./sdk
COPY server ./server
COPY workers ./workers
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production INBOXD_HOST=0.0.0.0 INBOXD_PORT=50051
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
USER node
EXPOSE 50051
CMD ["node", "dist/server/main.js"]
