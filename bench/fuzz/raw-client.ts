import grpc from '@grpc/grpc-js';
import type { CredClass } from './auth.js';
import { decodeTyped } from './schema.js';

/**
 * A gRPC client that sends bytes as they are: grpc-js's generic Client with identity
 * (de)serializers, so that a request can be anything the fuzzer made (invalid UTF-8, unknown
 * fields, truncated protobuf). Every call has a deadline; one that passes it is a hang.
 */

/** What one call (or raw HTTP/2 exchange) ended with. */
export interface Outcome {
  /** A gRPC status name (OK, INVALID_ARGUMENT, ...), or for raw HTTP/2: "http 415", "open (stalled)", "reset by client", "connection error". */
  status: string;
  /** The gRPC status code, when one came. */
  code?: number;
  details: string;
  /** No status within the deadline. */
  hang?: boolean;
  /** Status codes carried inside response messages (SendStream error_code, Subscribe settle results). */
  inner: { code: number; message: string }[];
  ms: number;
  /** A unary call's response message (OK only), for the auth-required run's checks of what it shows. */
  response?: Buffer;
  /** The auth-required run: the credential sent (auth.ts credLabel) and what the server should take it for. */
  auth?: { label: string; cls: CredClass };
}

export const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
);
export const codeName = (c: number) => CODE_NAMES[c] ?? `code ${c}`;

/** INTERNAL and UNKNOWN: statuses nobody can act on. */
export const BAD_CODES = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN]);

const identity = (b: Buffer) => b;

export class RawClient {
  readonly client: grpc.Client;

  constructor(readonly address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      // One connection per client: the canary's stays apart from the fuzzer's.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  /** `metadata`: sent with the call (the auth-required run's `authorization`); default none. */
  unary(path: string, body: Buffer, deadlineMs: number, metadata = new grpc.Metadata()): Promise<Outcome & { response?: Buffer }> {
    const t0 = Date.now();
    return new Promise(resolve => {
      this.client.makeUnaryRequest(path, identity, identity, body, metadata, { deadline: Date.now() + deadlineMs }, (err, res) => {
        const ms = Date.now() - t0;
        if (err) resolve(fromError(err, ms));
        else resolve({ status: 'OK', code: 0, details: '', inner: [], ms, response: res });
      });
    });
  }

  /**
   * Writes `bodies` on a bidi stream. `halfClose`: end the writes and wait for the status (by the
   * deadline). Otherwise (a Subscribe) keep the stream open for `holdMs`, then cancel it: no status
   * by then is the normal outcome of a stream that was accepted ("open").
   */
  stream(
    path: string,
    bodies: Buffer[],
    o: { deadlineMs: number; halfClose: boolean; holdMs: number; responseType: string; metadata?: grpc.Metadata },
  ): Promise<Outcome> {
    const t0 = Date.now();
    const inner: Outcome['inner'] = [];
    return new Promise(resolve => {
      const call = this.client.makeBidiStreamRequest(path, identity, identity, o.metadata ?? new grpc.Metadata(), { deadline: Date.now() + o.deadlineMs });
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (out: Outcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(out);
      };
      call.on('data', (b: Buffer) => inner.push(...innerCodes(o.responseType, b)));
      call.on('error', () => {});
      call.on('status', (s: grpc.StatusObject) => {
        const ms = Date.now() - t0;
        if (s.code === grpc.status.CANCELLED && cancelled) finish({ status: 'open', details: 'accepted; cancelled by the fuzzer', inner, ms });
        else finish({ ...fromError(Object.assign(new Error(s.details), s), ms), inner });
      });
      let cancelled = false;
      for (const b of bodies) call.write(b);
      if (o.halfClose) call.end();
      else
        timer = setTimeout(() => {
          cancelled = true;
          call.cancel();
        }, o.holdMs);
    });
  }

  close(): void {
    this.client.close();
  }
}

function fromError(err: Partial<grpc.ServiceError>, ms: number): Outcome & { response?: Buffer } {
  const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
  const hang = code === grpc.status.DEADLINE_EXCEEDED;
  return { status: codeName(code), code, details: String(err.details ?? err.message ?? ''), hang, inner: [], ms };
}

/** Status codes inside a streamed response: SendStreamResponse.error_code, Subscribe's TokenError codes. */
export function innerCodes(responseType: string, b: Buffer): Outcome['inner'] {
  try {
    const m = decodeTyped(responseType, b);
    const out: Outcome['inner'] = [];
    if (m.errorCode) out.push({ code: m.errorCode, message: m.errorMessage ?? '' });
    for (const k of ['ackResults', 'nackResults', 'extendResults'])
      for (const f of m[k]?.failed ?? []) out.push({ code: f.code ?? 0, message: f.message ?? '' });
    return out;
  } catch (err) {
    return [{ code: -1, message: `undecodable response: ${(err as Error).message}` }];
  }
}
