import http2 from 'node:http2';
import fc from 'fast-check';
import { codeName, type Outcome } from './raw-client.js';
import { RPCS } from './schema.js';

/**
 * Raw HTTP/2 and gRPC framing abuse, with node:http2 directly (no gRPC library in between):
 * lying length prefixes, the compressed flag without compression, truncated frame headers,
 * streams that stall mid-message and are left open, garbage content-types, unknown method paths,
 * RST_STREAM mid-call, several messages to a unary method, none at all.
 */
export type H2Abuse =
  /** Declares `declared` bytes, sends `sent` (< declared), then ends the stream. */
  | { t: 'lying_length'; path: string; declared: number; sent: number }
  /** The same, but the stream is left open (closed when the batch ends). */
  | { t: 'stall_mid_message'; path: string; declared: number; sent: number }
  /** Compressed flag 1 on a message that is not compressed; `encoding` is the grpc-encoding header sent (none: no header). */
  | { t: 'compressed_flag'; path: string; encoding: 'none' | 'identity' | 'gzip' | 'deflate' | 'snappy'; body: Uint8Array }
  /** 1..4 bytes of the 5-byte message header, then the end of the stream. */
  | { t: 'truncated_frame'; path: string; cut: number }
  | { t: 'bad_content_type'; path: string; contentType: string }
  | { t: 'unknown_path'; path: string }
  /** Part of a message, then RST_STREAM with `code`. */
  | { t: 'rst_mid_call'; path: string; sent: number; code: number }
  /** `count` well-framed messages on one stream (a unary method takes one). */
  | { t: 'extra_messages'; path: string; count: number; body: Uint8Array }
  /** Headers, then the end of the stream, no message. */
  | { t: 'no_message'; path: string };

const path = fc.constantFrom(...RPCS.map(r => r.path));
const body = fc.uint8Array({ maxLength: 24 });
const declared = fc.constantFrom(16, 1000, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 64 * 1024 * 1024, 2 ** 32 - 1);

export const H2_ABUSE: fc.Arbitrary<H2Abuse> = fc.oneof(
  fc.record({ t: fc.constant('lying_length' as const), path, declared, sent: fc.nat(15) }),
  fc.record({ t: fc.constant('stall_mid_message' as const), path, declared, sent: fc.nat(15) }),
  fc.record({
    t: fc.constant('compressed_flag' as const),
    path,
    encoding: fc.constantFrom('none' as const, 'identity' as const, 'gzip' as const, 'deflate' as const, 'snappy' as const),
    body,
  }),
  fc.record({ t: fc.constant('truncated_frame' as const), path, cut: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    t: fc.constant('bad_content_type' as const),
    path,
    contentType: fc.constantFrom('text/html', 'application/json', 'application/grpc-web', 'application/grpc+json', '', 'application/grpc;x'),
  }),
  fc.record({
    t: fc.constant('unknown_path' as const),
    path: fc.constantFrom(
      '/inboxd.v1.Inbox/Nope',
      '/inboxd.v1.Nope/Send',
      '/inboxd.v1.Inbox/',
      '/',
      '/x/y/z',
      '/inboxd.v1.Queues/send',
      `/${'a'.repeat(5000)}/b`,
    ),
  }),
  fc.record({
    t: fc.constant('rst_mid_call' as const),
    path,
    sent: fc.nat(8),
    code: fc.constantFrom(
      http2.constants.NGHTTP2_CANCEL,
      http2.constants.NGHTTP2_INTERNAL_ERROR,
      http2.constants.NGHTTP2_PROTOCOL_ERROR,
      http2.constants.NGHTTP2_REFUSED_STREAM,
    ),
  }),
  fc.record({ t: fc.constant('extra_messages' as const), path, count: fc.integer({ min: 2, max: 5 }), body }),
  fc.record({ t: fc.constant('no_message' as const), path }),
);

export function frame(flag: number, declaredLength: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt8(flag, 0);
  h.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([h, Buffer.from(payload)]);
}

/** HTTP/2 sessions still holding stalled streams; closed by closeStalled(). */
const stalled = new Set<http2.ClientHttp2Session>();

export function closeStalled(): number {
  const n = stalled.size;
  for (const s of stalled) s.destroy();
  stalled.clear();
  return n;
}

export function grpcHeaders(path: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra };
}

/** Runs one abuse on its own connection; answers what the server did. */
export function runH2(address: string, a: H2Abuse, deadlineMs: number): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise(resolve => {
    const session = http2.connect(`http://${address}`);
    let done = false;
    let httpStatus: number | undefined;
    let grpcStatus: number | undefined;
    let grpcMessage = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = (o: Omit<Outcome, 'inner' | 'ms'>, keep = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (keep) stalled.add(session);
      else session.destroy();
      resolve({ ...o, inner: [], ms: Date.now() - t0 });
    };
    session.on('error', err => finish({ status: 'connection error', details: err.message }));
    const extra: http2.OutgoingHttpHeaders = {};
    if (a.t === 'bad_content_type') extra['content-type'] = a.contentType;
    if (a.t === 'compressed_flag' && a.encoding !== 'none') extra['grpc-encoding'] = a.encoding;
    const req = session.request(grpcHeaders(a.path, extra));
    let resetting = false;
    const answered = () => {
      if (resetting) finish({ status: 'reset by client', details: 'RST_STREAM mid-message' });
      else if (grpcStatus !== undefined) finish({ status: codeName(grpcStatus), code: grpcStatus, details: grpcMessage });
      else if (httpStatus !== undefined && httpStatus !== 200) finish({ status: `http ${httpStatus}`, details: grpcMessage });
      else finish({ status: 'no status', details: `stream closed (rst code ${req.rstCode}) without a grpc-status` });
    };
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h[':status'] !== undefined) httpStatus = Number(h[':status']);
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    req.on('response', read);
    req.on('trailers', read);
    req.on('data', () => {});
    req.on('error', () => {});
    req.on('close', answered);
    switch (a.t) {
      case 'lying_length':
        req.end(frame(0, a.declared, Buffer.alloc(Math.min(a.sent, a.declared - 1), 1)));
        break;
      case 'stall_mid_message':
        req.write(frame(0, a.declared, Buffer.alloc(Math.min(a.sent, a.declared - 1), 1)));
        // An early answer (e.g. RESOURCE_EXHAUSTED for a declared size above the limit) is fine; else it stays open.
        timer = setTimeout(() => finish({ status: 'open (stalled)', details: 'left open mid-message until the batch ends' }, true), 300);
        return;
      case 'compressed_flag':
        req.end(frame(1, a.body.length, a.body));
        break;
      case 'truncated_frame':
        req.end(frame(0, 10, Buffer.alloc(0)).subarray(0, a.cut));
        break;
      case 'bad_content_type':
      case 'unknown_path':
        req.end(frame(0, 0, Buffer.alloc(0)));
        break;
      case 'rst_mid_call':
        req.write(frame(0, 100, Buffer.alloc(a.sent, 2)));
        setTimeout(() => {
          resetting = true;
          req.close(a.code);
          setTimeout(() => finish({ status: 'reset by client', details: `RST_STREAM ${a.code} mid-message` }), 20);
        }, 15);
        return;
      case 'extra_messages':
        req.end(Buffer.concat(Array.from({ length: a.count }, () => frame(0, a.body.length, a.body))));
        break;
      case 'no_message':
        req.end();
        break;
    }
    timer = setTimeout(
      () => finish({ status: 'DEADLINE_EXCEEDED', details: `no answer within ${deadlineMs} ms of the end of the request`, hang: true }),
      deadlineMs,
    );
  });
}
