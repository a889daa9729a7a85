/**
 * Bytes of deliveries written to Subscribe streams and not yet sent on to the client (HTTP/2 flow
 * control holds them while the client does not read). A stream with bytes waiting gets no more once
 * it holds STREAM_BUFFER_BYTES, or once all streams together hold the server's cap: what a client
 * that stopped reading costs the server is bounded, per stream and in all. Streams that keep up
 * (nothing waiting) are never held back by the others.
 */
export const STREAM_BUFFER_BYTES = 16 * 1024 * 1024;

export class WriteBuffers {
  private bytes = 0;

  constructor(readonly capBytes: number) {}

  get used(): number {
    return this.bytes;
  }

  /** Room left under the server's cap. */
  get room(): number {
    return Math.max(0, this.capBytes - this.bytes);
  }

  add(n: number): void {
    this.bytes += n;
  }

  sub(n: number): void {
    this.bytes = Math.max(0, this.bytes - n);
  }
}
