/**
 * TLS for every link of a process: the PEM key and certificate it serves and
 * presents, and the CA every peer's certificate must chain to. Read once per
 * process from the folder the env contract names (TENSORFLEET_TLS_DIR, files TLS_FILES).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENV } from '../../contract/env';
import { TrainerError } from '../../contract/errors';
import { TLS_FILES } from '../../contract/paths';

/** The TLS options every endpoint (WsTransport, Hub, HubClient, the finished listener) takes. */
export interface TlsOptions {
  /**
   * PEM private key: serve (and, with tlsCa, present when dialing) this identity over wss://. Set with tlsCert.
   *
   * @default - plain ws://
   */
  readonly tlsKey?: string | Buffer;
  /**
   * PEM certificate of tlsKey.
   *
   * @default - plain ws://
   */
  readonly tlsCert?: string | Buffer;
  /**
   * PEM CA that peers' certificates must chain to: a dialer verifies the server against it, a server
   * with tlsKey/tlsCert requires every client to present a certificate that chains to it.
   *
   * @default - plain ws:// (with tlsKey/tlsCert set: the system CAs, and no client certificate asked)
   */
  readonly tlsCa?: string | Buffer;
}

/** The TLS material of one process. */
export type TlsMaterial = Required<TlsOptions>;

/** Whether `options` asks for wss://. */
export function usesTls(options: TlsOptions): boolean {
  return options.tlsKey !== undefined || options.tlsCa !== undefined;
}

/** Throw unless tlsKey and tlsCert are both set or both unset. */
export function checkTlsOptions(owner: string, options: TlsOptions): void {
  if ((options.tlsKey === undefined) !== (options.tlsCert === undefined)) {
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${owner}: set both 'tlsKey' and 'tlsCert' or neither`);
  }
}

/**
 * Read tls.key, tls.crt and ca.crt from `dir` (TENSORFLEET_TLS_DIR). Throws TRAINER_ERR_INVALID_ENV
 * naming the variable, the file and what is wrong when one is missing or not PEM.
 */
export function loadTls(dir: string): TlsMaterial {
  const read = (file: string): Buffer => {
    const path = join(dir, file);
    let pem: Buffer;
    try {
      pem = readFileSync(path);
    } catch (err) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ENV',
        `${ENV.tlsDir}=${dir}: cannot read ${path} (${(err as Error).message}); ` +
          `the folder must hold ${TLS_FILES.key}, ${TLS_FILES.cert} and ${TLS_FILES.ca}`,
        { cause: err },
      );
    }
    if (!pem.includes('-----BEGIN ')) {
      throw new TrainerError('TRAINER_ERR_INVALID_ENV', `${ENV.tlsDir}=${dir}: ${path} is not PEM (no '-----BEGIN' line)`);
    }
    return pem;
  };
  return { tlsKey: read(TLS_FILES.key), tlsCert: read(TLS_FILES.cert), tlsCa: read(TLS_FILES.ca) };
}

/** {@link loadTls} of `dir`, or no options when no TLS folder is set. */
export function tlsFromDir(dir: string | undefined): TlsOptions {
  return dir === undefined ? {} : loadTls(dir);
}
