import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { frame, grpcHeaders } from './http2-abuse.js';
import { codeName, innerCodes, type Outcome } from './raw-client.js';

/**
 * A gRPC call over node:http2 directly, for `authorization` values no gRPC library sends: several
 * of them on one request (node:http2 refuses a second value of a single-value header, and so does
 * grpc-js above it), bytes outside printable ASCII (latin1, a tab, U+0000), values past any size
 * a client would send. node:http2 opens the stream without the header; the values are then written
 * into the request's header block on the wire, as HPACK literals (RFC 7541 §6.2.2, "without
 * indexing", so both ends' dynamic tables stay as they were), in a CONTINUATION frame added after
 * the frame that ended the block. The request is sent whole and half-closed; the answer is read as
 * node:http2 decodes it.
 */

/** RFC 7541 §5.1: an integer with an `n`-bit prefix, the prefix's other bits `flags`. */
function hpackInt(value: number, n: number, flags: number): Buffer {
  const max = (1 << n) - 1;
  if (value < max) return Buffer.from([flags | value]);
  const out = [flags | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** `authorization` (static table index 23) with a raw (not Huffman-coded) value, not indexed. */
export function authorizationLiteral(value: Buffer): Buffer {
  return Buffer.concat([hpackInt(23, 4, 0x00), hpackInt(value.length, 7, 0x00), value]);
}

const PREFACE_BYTES = 24;
const MAX_FRAME = 16_384;

/**
 * A TCP connection that writes what node:http2 writes, except that the first header block gets
 * `extra` (HPACK bytes) appended: the frame that ends it (HEADERS or CONTINUATION with END_HEADERS)
 * loses that flag and is followed by CONTINUATION frames carrying `extra`, the last one with it.
 */
function injectingConnection(address: string, extra: Buffer): Duplex {
  const at = address.lastIndexOf(':');
  const socket = net.connect(Number(address.slice(at + 1)), address.slice(0, at).replace(/^\[|\]$/g, ''));
  let pending = Buffer.alloc(0);
  let prefaceLeft = PREFACE_BYTES;
  let injected = extra.length === 0;
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (injected && pending.length === 0) {
        socket.write(chunk, err => cb(err ?? null));
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, pending.length);
        out.push(pending.subarray(0, n));
        pending = pending.subarray(n);
        prefaceLeft -= n;
      }
      while (!injected && prefaceLeft === 0 && pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        const f = Buffer.from(pending.subarray(0, 9 + len));
        pending = pending.subarray(9 + len);
        const type = f[3];
        const flags = f[4] ?? 0;
        if ((type === 0x1 || type === 0x9) && flags & 0x4) {
          f[4] = flags & ~0x4;
          out.push(f);
          const stream = f.readUInt32BE(5) & 0x7fffffff;
          for (let i = 0; i < extra.length || i === 0; i += MAX_FRAME) {
            const part = extra.subarray(i, i + MAX_FRAME);
            const h = Buffer.alloc(9);
            h.writeUIntBE(part.length, 0, 3);
            h[3] = 0x9;
            h[4] = i + MAX_FRAME >= extra.length ? 0x4 : 0;
            h.writeUInt32BE(stream, 5);
            out.push(h, part);
          }
          injected = true;
        } else out.push(f);
      }
      if (injected && pending.length) {
        out.push(pending);
        pending = Buffer.alloc(0);
      }
      if (out.length) socket.write(Buffer.concat(out), err => cb(err ?? null));
      else cb();
    },
    read() {},
    final(cb) {
      socket.end(() => cb());
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', d => duplex.push(d));
  socket.on('end', () => duplex.push(null));
  socket.on('error', err => duplex.destroy(err));
  return duplex;
}

/**
 * One call to `path` with `authorization` values (latin1 strings: one byte a character) in that
 * order, on a connection of its own: `bodies` framed, then the end of the stream.
 */
export function callWithHeaders(
  address: string,
  path: string,
  bodies: Buffer[],
  authorization: string[],
  deadlineMs: number,
  responseType: string,
): Promise<Outcome> {
  const t0 = Date.now();
  const extra = Buffer.concat(authorization.map(v => authorizationLiteral(Buffer.from(v, 'latin1'))));
  return new Promise(resolve => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let grpcStatus: number | undefined;
    let httpStatus: number | undefined;
    let grpcMessage = '';
    let data = Buffer.alloc(0);
    const session = http2.connect(`http://${address}`, { createConnection: () => injectingConnection(address, extra) });
    const finish = (o: Omit<Outcome, 'inner' | 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      // The response messages: 5-byte gRPC framing each, read for the status codes they carry.
      const inner: Outcome['inner'] = [];
      let response: Buffer | undefined;
      for (let off = 0; off + 5 <= data.length; ) {
        const len = data.readUInt32BE(off + 1);
        const msg = data.subarray(off + 5, off + 5 + len);
        response ??= msg;
        inner.push(...innerCodes(responseType, msg));
        off += 5 + len;
      }
      resolve({ ...o, inner, ms: Date.now() - t0, response: o.code === 0 ? response : undefined });
    };
    session.on('error', err => finish({ status: 'connection error', details: err.message }));
    const req = session.request(grpcHeaders(path));
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h[':status'] !== undefined) httpStatus = Number(h[':status']);
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    req.on('response', read);
    req.on('trailers', read);
    req.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
    req.on('error', () => {});
    req.on('close', () => {
      if (grpcStatus !== undefined) finish({ status: codeName(grpcStatus), code: grpcStatus, details: grpcMessage, hang: false });
      else if (httpStatus !== undefined && httpStatus !== 200) finish({ status: `http ${httpStatus}`, details: grpcMessage });
      else finish({ status: 'no status', details: `stream closed (rst code ${req.rstCode}) without a grpc-status` });
    });
    req.end(Buffer.concat(bodies.map(b => frame(0, b.length, b))));
    timer = setTimeout(() => finish({ status: 'DEADLINE_EXCEEDED', details: `no answer within ${deadlineMs} ms`, hang: true }), deadlineMs);
  });
}
