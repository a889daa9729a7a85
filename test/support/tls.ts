import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TlsFiles {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate per name (its subject CN), signed by the same CA. */
  client(name: string): { cert: string; key: string };
  /** A client certificate signed by another CA, which the server must refuse. */
  stranger: { cert: string; key: string };
}

const run = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function issue(dir: string, name: string, caName: string, cn: string, ext: string): void {
  run(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  run(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${caName}.crt`,
    '-CAkey',
    `${caName}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  ]);
}

function ca(dir: string, name: string): void {
  run(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  ]);
}

/** A test CA, a server certificate for 127.0.0.1 / localhost, and client certificates, made with the openssl CLI. */
export function makeTlsFiles(): TlsFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-tls-'));
  ca(dir, 'ca');
  ca(dir, 'other-ca');
  issue(dir, 'server', 'ca', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  issue(dir, 'stranger', 'other-ca', 'agent-b', 'extendedKeyUsage=clientAuth\n');
  const f = (n: string) => path.join(dir, n);
  return {
    dir,
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    client(name: string) {
      if (!fs.existsSync(f(`client-${name}.crt`))) issue(dir, `client-${name}`, 'ca', name, 'extendedKeyUsage=clientAuth\n');
      return { cert: f(`client-${name}.crt`), key: f(`client-${name}.key`) };
    },
    stranger: { cert: f('stranger.crt'), key: f('stranger.key') },
  };
}
