import { type Client, Metadata, type ServiceError, status as Status } from '@grpc/grpc-js';
import type { MessageInfo } from '@inboxd/proto/v1/message';
import type { RedriveFailure } from '@inboxd/proto/v1/queues';
import { type InboxdClient, InboxdError } from '@inboxd/sdk';
import { Command, Option } from 'commander';
import { type ClientFlags, parseCount, withClient, withClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit-codes.js';
import { payloadJson, preview, print, table } from '../output.js';

type Unary = (req: unknown, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res: any) => void) => unknown;

/**
 * Calls a method of the generated clients that the SDK does not wrap (yet): ListMessages and
 * Redrive, from issue 5. When this build's client lacks the method, or the server answers
 * UNIMPLEMENTED, the command fails saying so, with exit code 1.
 */
async function callRaw(client: InboxdClient, service: 'inbox' | 'queues', method: string, req: unknown, timeoutMs: number, what: string): Promise<any> {
  const stub = client.pool.pick()[service] as unknown as Client & Record<string, Unary | undefined>;
  const fn = stub[method];
  const unsupported = (why: string) => new CliError(`${what} is not supported by this server yet (${why})`, EXIT.failed, 'UNIMPLEMENTED');
  if (typeof fn !== 'function') throw unsupported(`this build has no ${method} call`);
  try {
    return await new Promise((resolve, reject) =>
      fn.call(stub, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(InboxdError.from(err)) : resolve(res))),
    );
  } catch (err) {
    if (err instanceof InboxdError && err.code === Status.UNIMPLEMENTED) throw unsupported(`${method}: ${err.details}`);
    throw err;
  }
}

const STATES = ['queued', 'delayed', 'leased', 'acked', 'dead-lettered', 'expired', 'dropped'];
const stateName = (n: number) => STATES[n - 1] ?? 'unknown';

const listTable = (ms: MessageInfo[]) =>
  table(ms, [
    { header: 'ID', value: m => m.message?.id },
    { header: 'STATE', value: m => stateName(m.state) },
    { header: 'FROM QUEUE', value: m => m.deadLetterOrigin?.queue || '-' },
    { header: 'ATTEMPTS', value: m => m.deadLetterOrigin?.attempts ?? m.attempts, right: true },
    { header: 'LAST ERROR', value: m => m.deadLetterOrigin?.lastError || m.lastError || '-' },
    { header: 'CREATED', value: m => m.createdAt?.toISOString() },
    { header: 'PAYLOAD', value: m => (m.message ? preview(m.message.payload) : '') },
  ]);

const listJson = (m: MessageInfo) => ({
  id: m.message?.id,
  queue: m.message?.queue,
  state: stateName(m.state),
  attempts: m.attempts,
  lastError: m.lastError || undefined,
  createdAt: m.createdAt?.toISOString(),
  completedAt: m.completedAt?.toISOString(),
  deadLetterOrigin: m.deadLetterOrigin ? { ...m.deadLetterOrigin, enqueuedAt: m.deadLetterOrigin.enqueuedAt?.toISOString() } : undefined,
  contentType: m.message?.contentType,
  headers: m.message?.headers,
  ...(m.message ? payloadJson(m.message.payload) : {}),
});

/** `inboxd dlq list|redrive`: what went to a dead-letter queue, and sending it back. */
export function dlqCommand(): Command {
  const dlq = new Command('dlq').description('dead-lettered messages: list them, and redrive them to the queue they failed in');

  withClientOptions(
    dlq
      .command('list')
      .description('list the messages in a dead-letter queue (or, with --state dead-lettered, those dead-lettered and kept in a queue that has none)')
      .argument('<queue>', 'the dead-letter queue')
      .addOption(new Option('--state <state>', 'only messages in this state').choices(STATES))
      .option('--limit <n>', 'most messages to list', parseCount(1, 1000), 100)
      .option('--newest-first', 'newest first instead of oldest first'),
  ).action(async (queue: string, o: ClientFlags & { state?: string; limit: number; newestFirst?: boolean }) =>
    withClient(o, async (client, out) => {
      const req = { queue, state: o.state ? STATES.indexOf(o.state) + 1 : 0, pageSize: o.limit, pageToken: '', newestFirst: o.newestFirst === true };
      const res = (await callRaw(client, 'inbox', 'listMessages', req, o.timeout, 'dlq list')) as { messages: MessageInfo[] };
      print(out, res.messages.map(listJson), () => (res.messages.length === 0 ? `no messages in ${queue}\n` : listTable(res.messages)));
    }),
  );

  withClientOptions(
    dlq
      .command('redrive')
      .description('move dead-lettered messages back to the queue each failed in (or --to another), as new messages with fresh attempts')
      .argument('<queue>', 'the dead-letter queue to move messages out of')
      .option('--to <queue>', 'send them here instead of where each failed')
      .option('--id <id...>', 'only these messages (ids in the dead-letter queue)')
      .option('--limit <n>', 'most messages to move (default: the server\u2019s, 1000)', parseCount(1, 100_000)),
  ).action(async (queue: string, o: ClientFlags & { to?: string; id?: string[]; limit?: number }) =>
    withClient(o, async (client, out) => {
      const req = { queue, messageIds: o.id ?? [], destination: o.to ?? '', limit: o.limit ?? 0 };
      const res = (await callRaw(client, 'queues', 'redrive', req, o.timeout, 'dlq redrive')) as { redriven: string; failed: RedriveFailure[] };
      const redriven = Number(res.redriven);
      print(
        out,
        { redriven, failed: res.failed.map(f => ({ ...f, code: Status[f.code] ?? f.code })) },
        () =>
          `redriven ${redriven}${
            res.failed.length > 0
              ? `, ${res.failed.length} left in place:\n` +
                table(res.failed, [
                  { header: 'ID', value: f => f.messageId },
                  { header: 'CODE', value: f => Status[f.code] ?? f.code },
                  { header: 'REASON', value: f => f.message },
                ])
              : '\n'
          }`,
      );
      if (res.failed.length > 0)
        throw new CliError(`${res.failed.length} message${res.failed.length === 1 ? '' : 's'} could not be redriven`, EXIT.failed, 'PARTIAL');
    }),
  );

  return dlq;
}
