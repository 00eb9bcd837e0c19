/**
 * Which hosts and addresses the `http-egress` resource may reach: a host allowlist with
 * wildcards (like Extism's `allowed_hosts`) and a refusal of the addresses that lead into the
 * machine or its network (loopback, link-local — cloud metadata lives at 169.254.169.254 —,
 * private and unique-local ranges), unless allowed.
 *
 * Platform-neutral (no `node:*`): the address check of a host *name* needs a resolver, which
 * the Node entry supplies (`dns.lookup`); without one only literal addresses and the
 * `localhost` names are recognised.
 *
 * @example
 * ```ts
 * const policy = egressPolicy({ allowHosts: ['*.example.com'], resolve: myResolve })
 * const refusal = await policy.check(new URL('http://127.0.0.1:6379/'))   // "… is a loopback address …"
 * ```
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'

/**
 * Who the egress may reach.
 *
 * @example
 * ```ts
 * { allowHosts: ['api.example.com', '*.internal.example.com'], allowPrivate: false }
 * ```
 */
export interface EgressPolicyOptions {
  /**
   * Host names the egress may reach; `*.example.com` matches every subdomain of
   * example.com (not example.com itself), `*` any host. Default: any host (subject to
   * `allowPrivate`). A name listed exactly (no wildcard, e.g. `localhost` or `10.0.0.7`)
   * may resolve to a private address: listing it is the operator saying so.
   */
  allowHosts?: readonly string[]
  /**
   * Let requests reach loopback, link-local, private (RFC 1918, CGNAT, unique-local) and
   * other non-public addresses. Default false.
   */
  allowPrivate?: boolean
  /**
   * The addresses a host name resolves to (all of them, IPv4 and IPv6). The Node entry
   * passes `dns.lookup`; without a resolver only literal addresses and `localhost` are
   * checked, and other names are assumed public.
   */
  resolve?: (host: string) => Promise<string[]>
}

/**
 * A compiled {@link EgressPolicyOptions}.
 *
 * @example
 * ```ts
 * const why = await egressPolicy({ allowHosts: ['api.example.com'] }).check(new URL('https://evil.test/'))
 * ```
 */
export interface EgressPolicy {
  /** Why `url` may not be requested, or undefined when it may. */
  check(url: URL): Promise<string | undefined>
  /** The policy in one phrase, for messages. */
  readonly summary: string
}

/**
 * Compile the options once; `check` then decides each URL (each hop of a redirect chain).
 *
 * @example
 * ```ts
 * const why = await egressPolicy({}).check(new URL('http://[::ffff:127.0.0.1]/'))  // refused: loopback
 * ```
 */
export function egressPolicy(options: EgressPolicyOptions = {}): EgressPolicy {
  // Brackets of an IPv6 literal ([::1]) and a trailing dot are dropped, as from the URL's host.
  const patterns = (options.allowHosts ?? [])
    .map((p) =>
      p
        .trim()
        .toLowerCase()
        .replace(/^\[|\]$/g, '')
        .replace(/\.$/, ''),
    )
    .filter((p) => p !== '')
  for (const p of patterns) {
    if (!/^(\*|(\*\.)?[a-z0-9_.:[\]-]+)$/.test(p))
      throw new EdgelessError('invalid-argument', `"${p}" is not a host pattern: give a host name or address, "*.example.com" for its subdomains, or "*".`, {
        pattern: p,
      })
  }
  const allowPrivate = options.allowPrivate === true
  const summary = `${patterns.length ? `hosts ${patterns.join(', ')}` : 'any host'}${allowPrivate ? ', private addresses allowed' : ', no private addresses'}`
  return {
    summary,
    async check(url) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return `the scheme ${url.protocol} is not HTTP`
      const host = url.hostname
        .toLowerCase()
        .replace(/^\[|\]$/g, '')
        .replace(/\.$/, '')
      const exact = patterns.includes(host)
      if (patterns.length && !exact && !patterns.some((p) => p === '*' || (p.startsWith('*.') && host.endsWith(p.slice(1))))) {
        return `the host ${host} is not in the allowed hosts (${patterns.join(', ')}); allow it with --allow-host ${host} (API: allowHosts)`
      }
      if (allowPrivate || exact) return undefined
      let addresses: string[]
      if (parseIp(host)) addresses = [host]
      else if (host === 'localhost' || host.endsWith('.localhost')) addresses = ['127.0.0.1']
      else if (options.resolve) {
        try {
          addresses = await options.resolve(host)
        } catch (e) {
          return `the host ${host} could not be resolved (${(e as { code?: string })?.code ?? (e as Error)?.message ?? String(e)})`
        }
      } else addresses = []
      for (const a of addresses) {
        const range = nonPublicRange(a)
        if (range)
          return `the host ${host}${a === host ? '' : ` resolves to ${a}, which`} is a ${range} address; requests to private networks are refused unless allowed (--allow-private, or --allow-host ${host}; API: allowPrivate, allowHosts)`
      }
      return undefined
    },
  }
}

/**
 * An IP address as 4 (IPv4) or 16 (IPv6) bytes, or undefined when `s` is not one.
 *
 * @example
 * ```ts
 * parseIp('::ffff:127.0.0.1') // [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1]
 * ```
 */
export function parseIp(s: string): number[] | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (v4) {
    const b = v4.slice(1).map(Number)
    return b.every((x) => x <= 255) ? b : undefined
  }
  if (!s.includes(':')) return undefined
  let text = s.replace(/%.*$/, '') // zone id
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const tail = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(text)
  if (tail) {
    const q = parseIp(tail[2]!)
    if (!q) return undefined
    text = `${tail[1]}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string) => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0]!)
  const rest = halves.length === 2 ? groups(halves[1]!) : []
  const missing = 8 - head.length - rest.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  const out: number[] = []
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined
    const n = parseInt(g, 16)
    out.push(n >> 8, n & 255)
  }
  return out
}

/**
 * The name of the non-public range `ip` lies in, or undefined for a public address (or a non-address).
 *
 * @example
 * ```ts
 * nonPublicRange('169.254.169.254') // 'link-local'
 * nonPublicRange('8.8.8.8')         // undefined
 * ```
 */
export function nonPublicRange(ip: string): string | undefined {
  const b = parseIp(ip)
  if (!b) return undefined
  return b.length === 4 ? v4Range(b) : v6Range(b)
}

function v4Range([a, b]: number[]): string | undefined {
  if (a === 127) return 'loopback'
  if (a === 0) return 'unspecified ("this network")'
  if (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168)) return 'private'
  if (a === 100 && b! >= 64 && b! <= 127) return 'shared (carrier-grade NAT)'
  if (a === 169 && b === 254) return 'link-local'
  if (a === 198 && (b === 18 || b === 19)) return 'benchmarking'
  if (a === 192 && b === 0) return 'IETF protocol'
  if (a! >= 224) return 'multicast or reserved'
  return undefined
}

function v6Range(b: number[]): string | undefined {
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0)
  if (zero(0, 15) && b[15] === 1) return 'loopback'
  if (zero(0, 16)) return 'unspecified'
  // Addresses that carry an IPv4 address: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
  // (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) — judged by it.
  if (zero(0, 10) && b[10] === 255 && b[11] === 255) return v4Range(b.slice(12))
  if (zero(0, 12)) return v4Range(b.slice(12))
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4Range(b.slice(12))
  if (b[0] === 0x20 && b[1] === 0x02) return v4Range(b.slice(2, 6))
  if ((b[0]! & 0xfe) === 0xfc) return 'unique-local (private)'
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local'
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'site-local (private)'
  if (b[0] === 0xff) return 'multicast'
  return undefined
}
