import { status } from '@grpc/grpc-js';
// Not part of grpc-js's public API: checked by test/bad-input.test.ts on every run, so an upgrade
// that moves it fails a test rather than silently bringing INTERNAL back.
import * as interceptors from '@grpc/grpc-js/build/src/server-interceptors.js';

type Decompress = (message: Buffer, encoding: string) => Buffer | Promise<Buffer>;

let applied = false;

/**
 * grpc-js answers a request whose compressed flag is set but whose body does not decompress with
 * INTERNAL ("Failed to decompress message"), before any handler runs: the one status a client
 * cannot act on, for what is the client's own mistake. It becomes INVALID_ARGUMENT saying what is
 * wrong. Applied once per process, at server start.
 */
export function patchGrpcStatuses(): void {
  if (applied) return;
  const proto = (interceptors as unknown as { BaseServerInterceptingCall: { prototype: { decompressMessage: Decompress } } }).BaseServerInterceptingCall.prototype;
  const original = proto.decompressMessage;
  if (typeof original !== 'function') throw new Error('grpc-js changed: BaseServerInterceptingCall.decompressMessage is gone (server/transport/grpc-patches.ts)');
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
