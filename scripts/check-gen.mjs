// Fails when proto/gen (the generated code of @inboxd/proto) differs from what `npm run gen` makes from proto/ now: generated code is
// generated, never edited, never stale. Generates into a temp dir and compares file by file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-gen-'));
try {
  execFileSync(path.join(root, 'node_modules/.bin/buf'), ['lint', 'proto'], { cwd: root, stdio: 'inherit' });
  execFileSync(path.join(root, 'node_modules/.bin/buf'), ['generate', '--output', tmp], { cwd: root, stdio: 'inherit' });
  const list = dir =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir, { recursive: true })
          .filter(f => fs.statSync(path.join(dir, f)).isFile())
          .sort()
      : [];
  const want = path.join(tmp, 'proto/gen');
  const have = path.join(root, 'proto/gen');
  const problems = [];
  const a = list(want);
  const b = list(have);
  for (const f of a) {
    if (!b.includes(f)) problems.push(`missing: proto/gen/${f}`);
    else if (!fs.readFileSync(path.join(want, f)).equals(fs.readFileSync(path.join(have, f)))) problems.push(`stale: proto/gen/${f}`);
  }
  for (const f of b) if (!a.includes(f)) problems.push(`not generated from proto/: proto/gen/${f}`);
  if (problems.length > 0) {
    console.error(`generated code drifted from proto/ (run \`npm run gen\` and commit):\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`codegen check: proto/gen matches proto/ (${a.length} files)`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
