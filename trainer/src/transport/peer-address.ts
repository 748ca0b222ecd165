/**
 * Whether a connection that says it is rank r comes from rank r's address. The ring knows every rank's host name
 * (the headless Service's `<job>-<r>.<job>-ring`, or an IP): a hello for rank r from an address that name does not
 * resolve to is a squatter, whatever token it holds. Locally every rank is 127.0.0.1 and the check passes trivially.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** Every address `host` resolves to (an IP literal resolves to itself). */
export type HostResolver = (host: string) => Promise<readonly string[]>;

/** The system resolver (what the ring dials with): every A and AAAA record of `host`. */
export const lookupAll: HostResolver = async (host) => {
  if (isIP(host) !== 0) return [host];
  return (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);
};

/** `address` without an IPv4-mapped IPv6 prefix or brackets, lowercased: `::ffff:10.0.0.1` is `10.0.0.1`. */
export function canonicalAddress(address: string): string {
  const bare = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare.startsWith('::ffff:') && isIP(bare.slice(7)) === 4 ? bare.slice(7) : bare;
}

/** The address part of `address:port` (IPv6 addresses contain colons: the port is after the last one). */
export function addressOfRemote(remote: string): string {
  const colon = remote.lastIndexOf(':');
  return canonicalAddress(colon < 0 ? remote : remote.slice(0, colon));
}

/** Why a connection is not (yet) known to come from its rank's address. */
export interface AddressProblem {
  readonly problem: string;
  /** The host resolved and the connection's address is not among its addresses: a squatter (refuse at once). */
  readonly mismatch: boolean;
}

/**
 * Why `remoteAddress` is not one of `host`'s addresses, or undefined if it is. A host that does not resolve is not
 * known to be anyone's yet (a new pod's DNS record may lag): not a mismatch, the caller may ask again.
 */
export async function addressProblem(resolve: HostResolver, host: string, remoteAddress: string): Promise<AddressProblem | undefined> {
  let resolved: readonly string[];
  try {
    resolved = await resolve(host);
  } catch (err) {
    const why = err instanceof Error ? err.message.slice(0, 100) : 'unknown error';
    return { problem: `its host ${host} does not resolve (${why})`, mismatch: false };
  }
  const remote = canonicalAddress(remoteAddress);
  if (resolved.some((address) => canonicalAddress(address) === remote)) return undefined;
  const shown = resolved.slice(0, 4).join(', ') + (resolved.length > 4 ? ', ...' : '');
  return { problem: `it connects from ${remote}, but its host ${host} is ${shown || 'no address'}`, mismatch: resolved.length > 0 };
}
