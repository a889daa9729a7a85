/**
 * The Node flags the server runs with, wherever it is started: `npm start`, the `inboxd` bin (its
 * shebang), the Docker image, and the benchmarks' server process. Flags that size V8's heap are
 * read when the process starts, so they live on those command lines; test/unit/node-flags.test.ts
 * fails when one of them drifts from this list.
 *
 * --max-semi-space-size=16 (MB): on this 24 GiB machine V8 let the young generation grow to
 * 134 MB (two semi-spaces of 64 MiB), and opening 10,000 Subscribe streams at once grew it all the
 * way, to stay that size, touched, while the streams sat idle: a third of the server's RSS. At 16
 * (32 MiB), 10,000 idle streams (`npm run bench -- --only idle_subscriptions`, one run each, same
 * day): RSS 447 -> 352 MB, idle CPU 2.0 / 2.2 %; e2e_throughput, 3 alternating pairs
 * (BENCH_SERVER_NODE_ARGS, `npm run bench -- --only e2e_throughput,latency_at_rate`): 9,726 ->
 * 10,349 msgs/s, server CPU 4.51 -> 4.21 s per 100k, server RSS 363 -> 277 MB; latency_at_rate
 * p99 within noise (19.6-41.3 ms against 19.3-29.1).
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=16'];
