import { BinaryReader } from '@bufbuild/protobuf/wire';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { invalid } from '../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const decodeUtf8 = (bytes: Uint8Array) => utf8.decode(bytes);

const MALFORMED = Symbol('malformed request');

/** What a request that could not be decoded becomes: the handler answers INVALID_ARGUMENT with why. */
interface Malformed {
  [MALFORMED]: string;
}

/**
 * The service with request decoding that refuses what it cannot read faithfully: a string field
 * that is not UTF-8 (the generated decoder would quietly turn it into U+FFFD and store that), a
 * truncated message, a wrong wire type. grpc-js answers a decoder that throws with INTERNAL, which
 * tells a person nothing they can act on; so the decoder never throws, and hands the handler a
 * marker that throwIfMalformed() turns into INVALID_ARGUMENT naming the message type.
 */
export function strictRequests<S extends ServiceDefinition>(service: S): S {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(service)) {
    const type = def.path.slice(1) || name;
    out[name] = {
      ...def,
      requestDeserialize: (buf: Buffer) => {
        try {
          // The generated decode() takes a reader as well as bytes: this one checks UTF-8.
          return def.requestDeserialize(new BinaryReader(buf, decodeUtf8) as unknown as Buffer);
        } catch (err) {
          return {
            [MALFORMED]: `the ${type} request is not a valid protobuf message of its type (${(err as Error).message}); strings must be UTF-8`,
          } satisfies Malformed;
        }
      },
    };
  }
  return out as S;
}

/** Throws INVALID_ARGUMENT for a request strictRequests() could not decode. */
export function throwIfMalformed(req: unknown): void {
  const why = (req as Partial<Malformed> | null)?.[MALFORMED];
  if (why !== undefined) throw invalid(why);
}
