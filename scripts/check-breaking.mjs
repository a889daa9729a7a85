// Fails when proto/ breaks what the last release published (buf breaking, FILE rules, see
// proto/buf.yaml): the last release is the newest v* tag, or, in a clone without tags, the commit
// proto/releases.json records for it. On a branch other than main, also against main.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
const buf = path.join(root, 'node_modules/.bin/buf');

const against = [];
const tag = git('tag', '--list', 'v*', '--sort=-v:refname').split('\n')[0];
const recorded = JSON.parse(readFileSync(path.join(root, 'proto/releases.json'), 'utf8')).releases[0];
if (tag) against.push(`.git#tag=${tag},subdir=proto`);
else if (recorded) {
  // The commit must be in this clone's history (a shallow clone may lack it).
  try {
    git('cat-file', '-e', `${recorded.commit}^{commit}`);
    against.push(`.git#ref=${recorded.commit},subdir=proto`);
  } catch {
    console.error(`proto breaking check: release ${recorded.version} (${recorded.commit}) is not in this clone's history: fetch it (git fetch --unshallow)`);
    process.exit(1);
  }
} else console.log('proto breaking check: no release recorded (proto/releases.json) nor tagged, nothing to compare with');
const branch = git('rev-parse', '--abbrev-ref', 'HEAD');
if (branch !== 'main' && branch !== 'HEAD' && git('branch', '--list', 'main')) against.push('.git#branch=main,subdir=proto');

let failed = false;
for (const a of against) {
  try {
    execFileSync(buf, ['breaking', 'proto', '--against', a], { cwd: root, stdio: 'inherit' });
    console.log(`proto breaking check: proto/ keeps what ${a.split(',')[0].slice(5)} published`);
  } catch {
    console.error(`proto/ breaks ${a}: see above; keep the field/method, or deprecate it, or make a new version package`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
