import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { AuthService } from '@inboxd/proto/v1/auth';
import { InboxService } from '@inboxd/proto/v1/inbox';
import { QueuesService } from '@inboxd/proto/v1/queues';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Logger } from 'pino';
import { Auth, type AuthMode } from './auth/auth.js';
import { isLoopback } from './config.js';
import { countCoreEvents } from './metrics/core-metrics.js';
import { callInterceptor } from './metrics/interceptor.js';
import { Metrics } from './metrics/metrics.js';
import { type CoreOptions, QueueCore } from './queue/core.js';
import { linkableDescriptors, reflectionProtoPaths } from './reflection.js';
import { authService } from './transport/auth-service.js';
import { CallTracker } from './transport/call-tracker.js';
import { limitPartlyReceived, patchGrpcStatuses } from './transport/grpc-patches.js';
import { inboxService } from './transport/inbox-service.js';
import { queuesService } from './transport/queues-service.js';
import { strictRequests } from './transport/strict-decode.js';

export interface AppOptions extends CoreOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  maxStreams: number;
  maxStreamsPerConnection: number;
  maxReceivingBytes: number;
  shutdownTimeoutMs: number;
  auth: AuthMode;
  adminKey: string;
  principalMaxStreams: number;
  principalSendRate: number;
  /** PEM files; tlsCert and tlsKey: serve TLS; tlsClientCa too: mutual TLS. */
  tlsCert: string;
  tlsKey: string;
  tlsClientCa: string;
  jwtJwksUrl: string;
  jwtPublicKeyFile: string;
  jwtIssuer: string;
  jwtAudience: string;
  jwtClaim: string;
}

export interface App {
  /** host:port the server listens on (the real port when 0 was asked for). */
  address: string;
  port: number;
  core: QueueCore;
  auth: Auth;
  /** This server's metrics (serve them with metrics/http.ts). */
  metrics: Metrics;
  /** Drains and stops: refuse new calls, close streams (releasing leases), finish sends, stop. */
  stop(): Promise<void>;
}

const SERVICES = ['inboxd.v1.Inbox', 'inboxd.v1.Queues', 'inboxd.v1.Auth'];

/** A PEM file's contents, or an error naming the setting. */
function pem(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${setting}: cannot read ${file} (${(err as Error).message})`);
  }
}

/** Plaintext, TLS, or mutual TLS (client certificates required and verified against the CA). */
function serverCredentials(opts: AppOptions): ServerCredentials {
  if (!opts.tlsCert) return ServerCredentials.createInsecure();
  const pair = { cert_chain: pem(opts.tlsCert, '--tls-cert / INBOXD_TLS_CERT_FILE'), private_key: pem(opts.tlsKey, '--tls-key / INBOXD_TLS_KEY_FILE') };
  const ca = opts.tlsClientCa ? pem(opts.tlsClientCa, '--tls-client-ca / INBOXD_TLS_CLIENT_CA_FILE') : null;
  return ServerCredentials.createSsl(ca, [pair], ca !== null);
}

/** The .proto files (for reflection) ship in the contract package, @inboxd/proto, beside its generated code. */
function protoDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('@inboxd/proto/package.json'));
}

/** `metrics`: a registry to count into (serve() passes one with process metrics); else a new one. */
export async function startApp(opts: AppOptions, log: Logger, metrics = new Metrics()): Promise<App> {
  patchGrpcStatuses();
  limitPartlyReceived(opts.maxReceivingBytes);
  const creds = serverCredentials(opts);
  const core = new QueueCore(opts, log);
  await core.start();
  const auth = new Auth(
    core,
    {
      mode: opts.auth,
      adminKey: opts.adminKey,
      principalMaxStreams: opts.principalMaxStreams,
      principalSendRate: opts.principalSendRate,
      jwt: { jwksUrl: opts.jwtJwksUrl, publicKeyFile: opts.jwtPublicKeyFile, issuer: opts.jwtIssuer, audience: opts.jwtAudience, claim: opts.jwtClaim },
    },
    log,
    metrics,
  );
  try {
    await auth.start();
  } catch (err) {
    await core.stop().catch(() => {});
    throw err;
  }
  countCoreEvents(core.events, metrics);
  metrics.attach(core, opts.schema, log);

  // Big enough for a full batch of max-size messages, plus framing.
  const maxFrame = Math.max(4 * 1024 * 1024, opts.maxMessageBytes * 2 + 1024 * 1024);
  const server = new Server({
    'grpc.max_receive_message_length': maxFrame,
    'grpc.max_send_message_length': maxFrame,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    'grpc.max_concurrent_streams': opts.maxStreamsPerConnection,
    // No channelz: inboxd serves no channelz service, so its per-call and per-connection trackers
    // (an object and four closures on every call, open streams included) are never read.
    'grpc.enable_channelz': 0,
    interceptors: [callInterceptor(metrics, log)],
  });
  const calls = new CallTracker(log, auth, { maxStreams: opts.maxStreams });
  server.addService(
    strictRequests(InboxService),
    inboxService(core, calls, {
      maxMessageBytes: opts.maxMessageBytes,
      // The SDK sends on SendStreams: their batches are timed beside the unary Sends.
      batchAnswered: seconds => metrics.rpcDuration.observe({ method: 'Inbox/SendStream' }, seconds),
    }),
  );
  server.addService(strictRequests(QueuesService), queuesService(core, calls));
  server.addService(strictRequests(AuthService), authService(core, calls));

  const health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(SERVICES.map(s => [s, 'NOT_SERVING' as const])) });
  health.addToServer(server);

  const dir = protoDir();
  const pkg = protoLoader.loadSync(['inboxd/v1/inbox.proto', 'inboxd/v1/queues.proto', 'inboxd/v1/auth.proto', healthProtoPath, ...reflectionProtoPaths()], {
    includeDirs: [dir],
    keepCase: true,
  });
  new ReflectionService(linkableDescriptors(pkg)).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const where = `${opts.host}:${port}`;
  if (!auth.required) {
    if (isLoopback(opts.host))
      log.warn(
        `auth is off: any program on this machine that reaches ${where} may do anything (fine for local use; bind to another address and auth is required)`,
      );
    else
      log.warn(`auth is OFF on ${where}, which is not a loopback address: anyone who reaches it may read, settle and delete every inbox. Set --auth required`);
  } else {
    if (!opts.tlsCert && !isLoopback(opts.host))
      log.warn(`auth is required but ${where} serves plaintext: keys and messages cross the network readable. Set --tls-cert and --tls-key`);
    if (!opts.adminKey) log.info('auth is required and no INBOXD_ADMIN_KEY is set: only existing principals can call (set one to bootstrap)');
  }
  // Health follows the database: a load balancer stops sending calls that could only fail.
  let stopping: Promise<void> | undefined;
  const setHealth = () => {
    const serving = !stopping && core.db.up;
    for (const s of ['', ...SERVICES]) health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
  };
  core.db.on('down', setHealth);
  core.db.on('up', setHealth);
  setHealth();

  return {
    address: `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    port,
    core,
    auth,
    metrics,
    stop: () =>
      (stopping ??= (async () => {
        // One deadline for the whole drain: a supervisor's grace period (Docker's is 10 s) is one number.
        const deadline = Date.now() + opts.shutdownTimeoutMs;
        const left = () => Math.max(0, deadline - Date.now());
        for (const s of ['', ...SERVICES]) health.setStatus(s, 'NOT_SERVING');
        core.db.off('down', setHealth);
        core.db.off('up', setHealth);
        const drained = (async () => {
          await calls.drain(left());
          await core.drainSends();
          await new Promise<void>(resolve => server.tryShutdown(() => resolve()));
        })();
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([drained.then(() => false), new Promise<boolean>(resolve => (timer = setTimeout(() => resolve(true), left())))]);
        clearTimeout(timer);
        if (late) {
          log.warn({ timeoutMs: opts.shutdownTimeoutMs }, 'drain did not finish within the shutdown timeout: cutting the calls still open');
          server.forceShutdown();
        }
        // Bounded too: a database that does not answer must not hold the process past its deadline.
        await Promise.race([auth.stop().then(() => core.stop()), new Promise<void>(resolve => setTimeout(resolve, Math.max(left(), 250)).unref())]);
      })()),
  };
}
