import type { PrincipalInfo } from '@inboxd/sdk';
import { Command, InvalidArgumentError } from 'commander';
import { type ClientFlags, parseCount, withClient, withClientOptions } from '../client.js';
import { print, table } from '../output.js';

const iso = (d: Date | undefined) => d?.toISOString() ?? '-';

const principalsTable = (ps: PrincipalInfo[]) =>
  table(ps, [
    { header: 'NAME', value: p => p.name },
    { header: 'ADMIN', value: p => (p.admin ? 'yes' : 'no') },
    { header: 'STREAMS', value: p => p.openStreams, right: true },
    { header: 'MAX STREAMS', value: p => p.maxStreams || 'default', right: true },
    { header: 'MAX SEND/S', value: p => p.maxSendRate || 'default', right: true },
    { header: 'LAST SEEN', value: p => iso(p.lastSeenAt) },
    { header: 'CREATED', value: p => iso(p.createdAt) },
    { header: 'CREATED BY', value: p => p.createdBy || '-' },
    {
      header: 'METADATA',
      value: p =>
        Object.entries(p.metadata)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-',
    },
  ]);

export const principalJson = (p: PrincipalInfo) => ({ ...p, createdAt: p.createdAt?.toISOString(), lastSeenAt: p.lastSeenAt?.toISOString() });

/** `--metadata key=value`, repeatable: collects into one object. */
function parseMetadata(raw: string, prev: Record<string, string> | undefined): Record<string, string> {
  const i = raw.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`${JSON.stringify(raw)} is not key=value`);
  return { ...prev, [raw.slice(0, i)]: raw.slice(i + 1) };
}

interface CreateFlags extends ClientFlags {
  admin?: boolean;
  metadata?: Record<string, string>;
  maxStreams?: number;
  maxSendRate?: number;
}

/** `inboxd principals …`: create, list, get, delete the identities calls are made as (an admin's commands). */
export function principalsCommand(): Command {
  const principals = new Command('principals').description('create, list, inspect and delete principals (the agents and services that call inboxd)');

  withClientOptions(
    principals
      .command('create')
      .description('create a principal; then give it a key (inboxd keys create) and grants (inboxd grants add)')
      .argument('<name>', '1-100 letters, digits, _ - . : @, starting with a letter or digit')
      .option('--admin', 'may do everything, on every queue, and manage principals')
      .option('--metadata <key=value>', 'a label to keep with it (repeatable)', parseMetadata)
      .option('--max-streams <n>', "most streams it may hold open on one replica (default: the server's)", parseCount(1, 2_147_483_647))
      .option('--max-send-rate <n>', "most messages a second it may send through one replica (default: the server's)", parseCount(1, 2_147_483_647)),
  ).action(async (name: string, o: CreateFlags) =>
    withClient(o, async (client, out) => {
      const p = await client.auth.createPrincipal(name, { admin: o.admin, metadata: o.metadata, maxStreams: o.maxStreams, maxSendRate: o.maxSendRate });
      print(out, principalJson(p), () => principalsTable([p]));
    }),
  );

  withClientOptions(principals.command('list').alias('ls').description('list every principal')).action(async (o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const all = await client.auth.listPrincipals();
      print(out, all.map(principalJson), () => (all.length === 0 ? 'no principals\n' : principalsTable(all)));
    }),
  );

  withClientOptions(principals.command('get').description('show a principal').argument('<name>')).action(async (name: string, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const p = await client.auth.getPrincipal(name);
      print(out, principalJson(p), () => principalsTable([p]));
    }),
  );

  withClientOptions(
    principals.command('delete').alias('rm').description('delete a principal with its keys and grants (its open streams end)').argument('<name>'),
  ).action(async (name: string, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      await client.auth.deletePrincipal(name);
      print(out, { deleted: name }, () => `deleted principal ${name}\n`);
    }),
  );

  return principals;
}
