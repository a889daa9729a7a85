import { serve } from './serve.js';

/** `node --max-semi-space-size=16 dist/server/main.js [settings]`: the server alone (the CLI's `inboxd serve` runs the same; the flag: node-flags.ts). */
serve(process.argv.slice(2)).catch(err => {
  process.stderr.write(`inboxd: failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
