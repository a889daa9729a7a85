import { Client, Metadata, type ServiceError, status as Status } from '@grpc/grpc-js';
import { bearerInterceptor, channelCredentials, InboxdError } from '@inboxd/sdk';
import { Command } from 'commander';
import { type ClientFlags, credentialsOf, withClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit-codes.js';
import { print } from '../output.js';

// grpc.health.v1.HealthCheckRequest { string service = 1; } and HealthCheckResponse
// { ServingStatus status = 1; }: two one-field messages, encoded here rather than loading the proto.
const STATUSES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function encodeRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  if (name.length === 0) return Buffer.alloc(0);
  if (name.length > 127) throw new CliError('--service: at most 127 bytes', EXIT.usage, 'USAGE');
  return Buffer.concat([Buffer.from([0x0a, name.length]), name]);
}

function decodeResponse(buf: Buffer): string {
  // Field 1, varint; absent means 0 (UNKNOWN).
  for (let i = 0; i + 1 < buf.length; ) {
    const tag = buf[i++];
    const value = buf[i] ?? 0;
    if (tag === 0x08) return STATUSES[value] ?? `status ${value}`;
    break;
  }
  return 'UNKNOWN';
}

/** `inboxd health`: the standard gRPC health check, as load balancers and Docker's HEALTHCHECK ask it. */
export function healthCommand(): Command {
  return withClientOptions(
    new Command('health')
      .description("check a server's health (grpc.health.v1): exit 0 when SERVING, 3 when not serving or unreachable")
      .option('--service <name>', 'a service to ask about, e.g. inboxd.v1.Inbox (default: the server as a whole)', ''),
  ).action(async (o: ClientFlags & { service: string }) => {
    const { apiKey, tls } = credentialsOf(o);
    const client = new Client(o.address, channelCredentials({ tls }), { interceptors: apiKey === undefined ? [] : [bearerInterceptor(apiKey)] });
    try {
      const res = await new Promise<string>((resolve, reject) =>
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (s: string) => encodeRequest(s),
          (b: Buffer) => decodeResponse(b),
          o.service,
          new Metadata(),
          { deadline: Date.now() + o.timeout },
          (err: ServiceError | null, value?: string) => (err ? reject(InboxdError.from(err)) : resolve(value!)),
        ),
      ).catch(err => {
        if (err instanceof InboxdError && err.code === Status.NOT_FOUND)
          throw new CliError(`the server knows no service ${JSON.stringify(o.service)}`, EXIT.notFound, 'NOT_FOUND');
        throw err;
      });
      print(out(o), { status: res, service: o.service || undefined }, () => `${res}\n`);
      if (res !== 'SERVING') throw new CliError(`${o.service || 'server'} is ${res}`, EXIT.unavailable, res);
    } finally {
      client.close();
    }
  });
}

const out = (o: ClientFlags) => ({ json: o.json === true });
