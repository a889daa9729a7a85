import { type GrantInfo, VERBS, type Verb } from '@inboxd/sdk';
import { Command, InvalidArgumentError } from 'commander';
import { type ClientFlags, withClient, withClientOptions } from '../client.js';
import { print, table } from '../output.js';

/** `send,consume` → ['send', 'consume']: known verbs only, each once. */
export function parseVerbs(raw: string): Verb[] {
  const words = raw
    .split(',')
    .map(w => w.trim().toLowerCase())
    .filter(w => w !== '');
  if (words.length === 0) throw new InvalidArgumentError(`give at least one verb: ${VERBS.join(', ')}`);
  const unknown = words.filter(w => !(VERBS as readonly string[]).includes(w));
  if (unknown.length > 0)
    throw new InvalidArgumentError(
      `unknown verb${unknown.length === 1 ? '' : 's'} ${unknown.map(w => JSON.stringify(w)).join(', ')}: want ${VERBS.join(', ')}`,
    );
  return [...new Set(words as Verb[])];
}

export const grantsTable = (gs: GrantInfo[]) =>
  table(gs, [
    { header: 'PRINCIPAL', value: g => g.principal },
    { header: 'QUEUE', value: g => g.queue },
    { header: 'VERBS', value: g => g.verbs.join(',') || '-' },
  ]);

const VERBS_HELP = `comma-separated: ${VERBS.join(', ')}`;

/** `inboxd grants …`: which principal may do what on which queues. */
export function grantsCommand(): Command {
  const grants = new Command('grants').description('grant verbs (send, consume, browse, admin) on queues or queue prefixes to principals');

  withClientOptions(
    grants
      .command('add')
      .description('grant verbs on a queue (or on every queue under a prefix), adding to what the principal holds there')
      .argument('<principal>')
      .requiredOption('--queue <name>', "a queue name, or a prefix ending in '*' (team-a.*; * is every queue)")
      .requiredOption('--verbs <verbs>', VERBS_HELP, parseVerbs),
  ).action(async (principal: string, o: ClientFlags & { queue: string; verbs: Verb[] }) =>
    withClient(o, async (client, out) => {
      const g = await client.auth.addGrant(principal, o.queue, o.verbs);
      print(out, g, () => grantsTable([g]));
    }),
  );

  withClientOptions(
    grants
      .command('list')
      .alias('ls')
      .description("list a principal's grants (default: all you may see: every grant for an admin, else those on queues you administer)")
      .argument('[principal]'),
  ).action(async (principal: string | undefined, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const all = await client.auth.listGrants(principal);
      print(out, all, () => (all.length === 0 ? 'no grants\n' : grantsTable(all)));
    }),
  );

  withClientOptions(
    grants
      .command('remove')
      .alias('rm')
      .description('take verbs back (all of them without --verbs); prints what the principal still holds there')
      .argument('<principal>')
      .requiredOption('--queue <name>', 'the queue name or prefix, as granted')
      .option('--verbs <verbs>', `${VERBS_HELP} (default: all)`, parseVerbs),
  ).action(async (principal: string, o: ClientFlags & { queue: string; verbs?: Verb[] }) =>
    withClient(o, async (client, out) => {
      const g = await client.auth.removeGrant(principal, o.queue, o.verbs);
      print(out, g, () => (g.verbs.length === 0 ? `${principal} holds nothing on ${o.queue} now\n` : grantsTable([g])));
    }),
  );

  return grants;
}
