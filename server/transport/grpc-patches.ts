import { status } from '@grpc/grpc-js';
// Not part of grpc-js's public API: checked by test/bad-input.test.ts on every run, so an upgrade
// that moves it fails a test rather than silently bringing INTERNAL back.
import * as interceptors from '@grpc/grpc-js/build/src/server-interceptors.js';

type Decompress = (message: Buffer, encoding: string) => Buffer | Promise<Buffer>;

/** What the patches need of grpc-js's server call (BaseServerInterceptingCall). */
interface GrpcServerCall {
  decoder?: { readPartialMessage?: Buffer[]; readMessageRemaining?: number };
  stream: { once(event: 'close', fn: () => void): unknown };
  sendStatus(status: { code: number; details: string }): void;
  handleDataFrame(data: Buffer): void;
  decompressMessage: Decompress;
  /** Bytes of a message this call has partly received (counted in `receiving`). */
  inboxdPartial?: number;
  inboxdRefused?: boolean;
}

/**
 * Bytes of requests partly received, on every call of this process: a message is held as it
 * arrives until its last byte, and a client that declares a large message and stalls keeps what it
 * sent. Past the cap, a call that adds to it is refused with RESOURCE_EXHAUSTED and what else it
 * sends is dropped.
 */
const receiving = { bytes: 0, capBytes: Infinity };

/** Sets the cap on bytes of requests partly received, in all (INBOXD_MAX_RECEIVING_BYTES). */
export function limitPartlyReceived(capBytes: number): void {
  receiving.capBytes = capBytes;
}

/** Bytes of requests partly received now, in all. */
export function partlyReceivedBytes(): number {
  return receiving.bytes;
}

let applied = false;

/**
 * grpc-js answers a request whose compressed flag is set but whose body does not decompress with
 * INTERNAL ("Failed to decompress message"), before any handler runs: the one status a client
 * cannot act on, for what is the client's own mistake. It becomes INVALID_ARGUMENT saying what is
 * wrong. Applied once per process, at server start.
 */
export function patchGrpcStatuses(): void {
  if (applied) return;
  const proto = (interceptors as unknown as { BaseServerInterceptingCall: { prototype: GrpcServerCall } }).BaseServerInterceptingCall.prototype;
  const original = proto.decompressMessage;
  const onData = proto.handleDataFrame;
  if (typeof original !== 'function' || typeof onData !== 'function') {
    throw new Error('grpc-js changed: BaseServerInterceptingCall.decompressMessage/handleDataFrame are gone (server/transport/grpc-patches.ts)');
  }
  proto.handleDataFrame = function (this: GrpcServerCall, data: Buffer) {
    if (this.inboxdRefused) return;
    const before = this.inboxdPartial ?? 0;
    onData.call(this, data);
    // The parts of a message still arriving (the decoder keeps a finished one's until the next starts).
    const d = this.decoder;
    const after = d && (d.readMessageRemaining ?? 0) > 0 ? (d.readPartialMessage ?? []).reduce((n, b) => n + b.length, 0) : 0;
    if (this.inboxdPartial === undefined) {
      this.stream.once('close', () => {
        receiving.bytes -= this.inboxdPartial ?? 0;
        this.inboxdPartial = 0;
      });
    }
    this.inboxdPartial = after;
    receiving.bytes += after - before;
    if (after > 0 && after > before && receiving.bytes > receiving.capBytes) {
      receiving.bytes -= after;
      this.inboxdPartial = 0;
      this.inboxdRefused = true;
      this.sendStatus({
        code: status.RESOURCE_EXHAUSTED,
        details: `the server holds ${receiving.bytes} bytes of requests still arriving, its limit (INBOXD_MAX_RECEIVING_BYTES): send each message whole and promptly, or retry later`,
      });
    }
  };
  proto.decompressMessage = async function (this: unknown, message: Buffer, encoding: string) {
    try {
      return await original.call(this, message, encoding);
    } catch (err) {
      if ((err as { code?: number } | undefined)?.code === status.INTERNAL) {
        throw {
          code: status.INVALID_ARGUMENT,
          details: `the request's compressed flag is set but its body is not valid ${encoding} data: send it uncompressed, or compressed as its grpc-encoding header says`,
        };
      }
      throw err;
    }
  };
  applied = true;
}
