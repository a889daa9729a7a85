import fs from 'node:fs';
import type { SendOptions } from '@inboxd/sdk';
import { Command, Option } from 'commander';
import { type ClientFlags, parseDuration, withClient, withClientOptions } from '../client.js';
import { usage } from '../exit-codes.js';
import { io } from '../io.js';
import { print } from '../output.js';

interface SendFlags extends ClientFlags {
  file?: string;
  as?: 'json' | 'text' | 'bytes';
  lines?: boolean;
  contentType?: string;
  header: string[];
  id?: string;
  delay?: number;
  priority?: number;
  subject?: string;
  correlationId?: string;
  replyTo?: string;
}

const CONTENT_TYPES = { json: 'application/json', text: 'text/plain; charset=utf-8', bytes: 'application/octet-stream' };

async function readAll(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

/** The payload(s) to send, from the argument, --file (- for stdin) or piped stdin. */
async function payloads(arg: string | undefined, o: SendFlags): Promise<{ bodies: Buffer[]; kind: 'json' | 'text' | 'bytes' }> {
  if (arg !== undefined && o.file !== undefined) throw usage('give the payload as an argument or with --file, not both');
  let input: Buffer;
  let kind = o.as;
  if (arg !== undefined) {
    input = Buffer.from(arg, 'utf8');
    kind ??= 'text';
  } else if (o.file !== undefined) {
    try {
      input = o.file === '-' ? await readAll(io().stdin) : fs.readFileSync(o.file);
    } catch (err) {
      throw usage(`cannot read --file ${o.file}: ${(err as Error).message}`);
    }
    kind ??= 'bytes';
  } else if (!io().stdin.isTTY) {
    input = await readAll(io().stdin);
    // Nothing piped in is far likelier a mistake than a wish to send an empty message (--file /dev/null does that).
    if (input.length === 0) throw usage('no payload: stdin is empty; give the payload as an argument or with --file <path>');
    kind ??= 'bytes';
  } else {
    throw usage('no payload: give it as an argument, with --file <path>, or on stdin (inboxd send <queue> < file)');
  }
  let bodies = [input];
  if (o.lines) {
    bodies = input
      .toString('utf8')
      .split('\n')
      .map(l => l.replace(/\r$/, ''))
      .filter(l => l.trim() !== '')
      .map(l => Buffer.from(l, 'utf8'));
    if (bodies.length === 0) throw usage('--lines: the input has no non-empty line');
    if (o.id && bodies.length > 1) throw usage('--id names one message: it cannot be used with --lines and several lines');
  }
  if (kind === 'json') {
    bodies.forEach((b, i) => {
      try {
        JSON.parse(b.toString('utf8'));
      } catch (err) {
        throw usage(`${bodies.length > 1 ? `line ${i + 1}: ` : ''}payload is not valid JSON (${(err as Error).message}); drop --as json to send it as it is`);
      }
    });
  }
  return { bodies, kind };
}

function headers(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf('=');
    if (i <= 0) throw usage(`--header ${JSON.stringify(h)}: use key=value`);
    out[h.slice(0, i)] = h.slice(i + 1);
  }
  return out;
}

/** `inboxd send <queue> [payload]`. */
export function sendCommand(): Command {
  return withClientOptions(
    new Command('send')
      .description('send a message: the payload from the argument, --file, or stdin')
      .argument('<queue>', 'queue to send to')
      .argument('[payload]', 'the message body, as text')
      .option('-f, --file <path>', "read the payload from a file ('-': stdin)")
      .addOption(
        new Option('--as <kind>', 'what the payload is: json (checked), text, or bytes; default: text for an argument, bytes for a file or stdin').choices([
          'json',
          'text',
          'bytes',
        ]),
      )
      .option('--lines', 'send each non-empty line of the input as its own message')
      .option('--content-type <type>', 'content type to record (default from --as)')
      .option('-H, --header <key=value>', 'a header (repeat for more)', (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option('--id <uuid>', 'message id of your own: sending it again stores nothing new')
      .option('--delay <duration>', 'deliver no sooner than this from now', parseDuration)
      .option('--priority <n>', 'higher is delivered first (-1000000..1000000)', (v: string) => {
        if (!/^-?\d+$/.test(v) || Math.abs(Number(v)) > 1_000_000) throw usage(`--priority ${JSON.stringify(v)}: a whole number from -1000000 to 1000000`);
        return Number(v);
      })
      .option('--subject <text>', 'what the message is about')
      .option('--correlation-id <id>', 'correlates a reply with its request')
      .option('--reply-to <queue>', 'where a reply should go'),
  ).action(async (queue: string, arg: string | undefined, o: SendFlags) => {
    const { bodies, kind } = await payloads(arg, o);
    const options: SendOptions = {
      id: o.id,
      contentType: o.contentType ?? CONTENT_TYPES[kind],
      headers: headers(o.header),
      delay: o.delay,
      priority: o.priority,
      subject: o.subject,
      correlationId: o.correlationId,
      replyTo: o.replyTo,
    };
    await withClient(o, async (client, out) => {
      const publisher = client.publisher();
      const ids = await Promise.all(bodies.map(b => publisher.send(queue, b, options)));
      await publisher.close();
      print(out, { queue, ids }, () => (ids.length === 1 ? `sent ${ids[0]} to ${queue}\n` : `sent ${ids.length} messages to ${queue}\n${ids.join('\n')}\n`));
    });
  });
}
