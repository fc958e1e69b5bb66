// Where Hei may send requests on a client's behalf (webhook targets): public unicast addresses only,
// judged by a maintained address library (ipaddr.js) rather than hand-written ranges. Addresses
// that embed an IPv4 address (IPv4-compatible `::/96`, mapped `::ffff:0:0/96`, translated
// `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) count as what they embed would —
// refused, since a private IPv4 hides behind each. WEBHOOKS_ALLOW_PRIVATE is the one switch that
// lifts all of this (the caller passes it as `allowPrivate`).
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { promisify } from 'node:util';
import ipaddr from 'ipaddr.js';

const EMBEDDING_IPV4 = [ipaddr.parseCIDR('::/96')];

/** Whether an IP literal is a public unicast address (anything unparsable is not). */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.parse(address);
  if (parsed.range() !== 'unicast') return false;
  return !(parsed.kind() === 'ipv6' && EMBEDDING_IPV4.some((cidr) => (parsed as ipaddr.IPv6).match(cidr)));
}

const LOCAL_NAME = /(^|\.)(localhost|local|internal)$/i;

/**
 * The target host as written in a URL (`[::1]` brackets allowed): refused when it is a local name,
 * a fully-qualified name with its trailing dot (`localhost.` would slip past name checks), or a
 * literal address that is not public. Names are judged again once resolved (`resolvesPublicOnly`).
 */
export function isAllowedTargetHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === '' || bare.endsWith('.') || LOCAL_NAME.test(bare)) return false;
  return ipaddr.isValid(bare) ? isPublicAddress(bare) : true;
}

const lookupAll = promisify(dnsLookup);

/** Whether every address a name resolves to is public; a name that does not resolve is not judged (true). */
export async function resolvesPublicOnly(host: string): Promise<boolean> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(bare)) return isPublicAddress(bare);
  let addresses: LookupAddress[];
  try {
    addresses = await lookupAll(bare, { all: true });
  } catch {
    return true; // unresolvable now: delivery resolves (and checks) again
  }
  return addresses.every((a) => isPublicAddress(a.address));
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for http(s).request that refuses names resolving to non-public addresses (no DNS rebinding). */
export function publicOnlyLookup(allowPrivate: boolean) {
  return (hostname: string, options: { all?: boolean } & Record<string, unknown>, callback: LookupCallback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '');
      const allowed = allowPrivate ? addresses : addresses.filter((a) => isPublicAddress(a.address));
      if (allowed.length === 0) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to a private address`);
        e.code = 'EPRIVATE';
        return callback(e, '');
      }
      if (options?.all) return callback(null, allowed);
      callback(null, allowed[0].address, allowed[0].family);
    });
  };
}
