import type pg from 'pg';
import type { Transactions } from '../../server/queue/migrations/migrate.js';

/** Transactions on one plain client, for running migrations without a server. */
export function clientTransactions(client: pg.Client): Transactions {
  return {
    async transaction(fn) {
      await client.query('BEGIN');
      try {
        const result = await fn({ exec: q => client.query(q.text, q.values) });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    },
  };
}
