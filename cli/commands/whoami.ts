import { Command } from 'commander';
import { type ClientFlags, withClient, withClientOptions } from '../client.js';
import { print } from '../output.js';
import { grantsTable } from './grants.js';

/** `inboxd whoami`: who the server takes the caller to be, and what it may do. */
export function whoamiCommand(): Command {
  return withClientOptions(new Command('whoami').description('show who the server takes you to be (from --api-key, …) and what you may do')).action(
    async (o: ClientFlags) =>
      withClient(o, async (client, out) => {
        const w = await client.auth.whoami();
        print(out, w, () => {
          const facts: [string, string][] = [
            ['principal', w.principal],
            ['admin', w.admin ? 'yes (every verb on every queue)' : 'no'],
            ['method', w.method],
            ['key', w.keyId || '-'],
            ['auth', w.authRequired ? 'required' : 'not required'],
            ['owns', w.ownedQueues.join(', ') || '-'],
          ];
          const width = Math.max(...facts.map(f => f[0].length));
          const head = facts.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join('');
          return `${head}\n${w.grants.length === 0 ? 'no grants\n' : grantsTable(w.grants)}`;
        });
      }),
  );
}
