import type { AuditEventInfo } from '@inboxd/sdk';
import { Command } from 'commander';
import { type ClientFlags, parseCount, withClient, withClientOptions } from '../client.js';
import { print, table } from '../output.js';

const eventsTable = (es: AuditEventInfo[]) =>
  table(es, [
    { header: 'AT', value: e => e.at?.toISOString() ?? '-' },
    { header: 'PRINCIPAL', value: e => e.principal || '-' },
    { header: 'ACTION', value: e => e.action },
    { header: 'METHOD', value: e => e.method || '-' },
    { header: 'VERB', value: e => e.verb || '-' },
    { header: 'TARGET', value: e => e.target || '-' },
    { header: 'PEER', value: e => e.peer || '-' },
    { header: 'DETAIL', value: e => e.detail || '-' },
  ]);

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** `inboxd audit`: recent audit events, newest first (an admin's command). */
export function auditCommand(): Command {
  return withClientOptions(
    new Command('audit')
      .description('recent audit events, newest first: denied calls, principals, keys and grants changed')
      .option('--principal <name>', 'only events of this principal')
      .option(
        '--action <action>',
        'only this action (repeatable): denied, principal.created, principal.deleted, key.created, key.revoked, grant.added, grant.removed',
        collect,
      )
      .option('--limit <n>', 'most events to show', parseCount(1, 100_000), 100),
  ).action(async (o: ClientFlags & { principal?: string; action?: string[]; limit: number }) =>
    withClient(o, async (client, out) => {
      const events = await client.auth.auditEvents({ principal: o.principal, actions: o.action, limit: o.limit });
      print(
        out,
        events.map(e => ({ ...e, at: e.at?.toISOString() })),
        () => (events.length === 0 ? 'no audit events\n' : eventsTable(events)),
      );
    }),
  );
}
