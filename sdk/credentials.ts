import { type ChannelCredentials, credentials as grpcCredentials, InterceptingCall, type Interceptor } from '@grpc/grpc-js';

/**
 * TLS to the server: PEM contents (not file paths). `ca` unset: the system's root certificates.
 * `cert` and `key` together: a client certificate (mTLS), which the server may take as the
 * caller's identity.
 */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

const pem = (v: string | Buffer | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));

/**
 * The channel credentials of a client: `credentials` as given, else TLS (`tls: true` for the
 * system roots, or TlsOptions), else plaintext. Throws RangeError on a contradiction.
 */
export function channelCredentials(o: { credentials?: ChannelCredentials; tls?: TlsOptions | boolean }): ChannelCredentials {
  if (o.credentials) {
    if (o.tls !== undefined && o.tls !== false) throw new RangeError('createClient: give either credentials or tls, not both');
    return o.credentials;
  }
  if (o.tls === undefined || o.tls === false) return grpcCredentials.createInsecure();
  if (o.tls === true) return grpcCredentials.createSsl();
  const { ca, cert, key } = o.tls;
  if ((cert === undefined) !== (key === undefined)) {
    throw new RangeError(
      `createClient: tls.${cert === undefined ? 'key' : 'cert'} was given without tls.${cert === undefined ? 'cert' : 'key'}: a client certificate needs both its cert and its private key (PEM)`,
    );
  }
  return grpcCredentials.createSsl(pem(ca), pem(key), pem(cert));
}

/** An API key as a header value must be visible ASCII: no spaces, newlines or other characters. */
export function checkApiKey(apiKey: string): void {
  if (apiKey.length === 0) throw new RangeError('createClient: apiKey is empty');
  if (!/^[\x21-\x7e]+$/.test(apiKey)) throw new RangeError('createClient: apiKey may hold only visible ASCII characters (no spaces or newlines)');
}

/**
 * A client interceptor that sends `authorization: Bearer <apiKey>` on every call, unary and
 * streaming. (Not call credentials: grpc-js refuses those on a plaintext channel, and a server on
 * localhost, or behind a TLS-terminating proxy, is reached in plaintext.)
 */
export function bearerInterceptor(apiKey: string): Interceptor {
  checkApiKey(apiKey);
  const value = `Bearer ${apiKey}`;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', value);
        next(metadata, listener);
      },
    });
}
