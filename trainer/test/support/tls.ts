/**
 * Test certificates made with `openssl` at test time: a CA and a certificate it signs
 * for localhost and 127.0.0.1 (server and client use), written as a TLS folder
 * (TLS_FILES: tls.crt, tls.key, ca.crt) as a mounted Secret would be. Not a test itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TLS_FILES } from '../../src/contract/paths';

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Make `dir` a TLS folder: a fresh CA (`ca.crt`) and a certificate it signs (`tls.crt`, `tls.key`)
 * with SANs localhost and 127.0.0.1. Returns `dir`.
 */
export async function makeTlsDir(dir: string, name = 'tensorfleet-test'): Promise<string> {
  await mkdir(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name} CA`,
      '-keyout',
      'ca.key',
      '-out',
      TLS_FILES.ca,
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      TLS_FILES.key,
      '-out',
      'tls.csr',
    ],
    dir,
  );
  await writeFile(
    join(dir, 'ext.cnf'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'tls.csr',
      '-CA',
      TLS_FILES.ca,
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
      '-out',
      TLS_FILES.cert,
    ],
    dir,
  );
  return dir;
}

/** The PEM files of a TLS folder, as the endpoint options take them. */
export async function readTlsDir(dir: string): Promise<{ tlsKey: Buffer; tlsCert: Buffer; tlsCa: Buffer }> {
  return {
    tlsKey: await readFile(join(dir, TLS_FILES.key)),
    tlsCert: await readFile(join(dir, TLS_FILES.cert)),
    tlsCa: await readFile(join(dir, TLS_FILES.ca)),
  };
}
