// http-egress against hostile guests (issue 18): a guest must not reach the machine's own
// services (loopback, link-local, private networks) unless the operator allows it, not
// through a redirect either, and must not make the host buffer an endless response.
// Real servers on 127.0.0.1.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import type { CallResult, WorkflowSpec } from '../lib/index'
import { encodeJson, parseHttpResponse, type EdgelessHTTPRequest } from '../lib/resources/http-types'
import * as egressModule from '../lib/resources/http-egress'
import * as policyModule from '../lib/resources/egress-policy'
import { collect, testRuntime } from './helpers/fixtures'

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler)
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })))
}

let target: { server: Server; port: number }
let hits = 0
let redirector: { server: Server; port: number }
let big: { server: Server; port: number }
const MiB = 1024 * 1024

beforeAll(async () => {
  // A loopback-only service the guest must not reach (think Redis, a metadata endpoint).
  target = await listen((_req, res) => {
    hits++
    res.end('secret')
  })
  // A server that redirects to it (as an "external" host would).
  redirector = await listen((req, res) => {
    const to = req.url === '/to-localhost' ? `http://localhost:${target.port}/` : `http://127.0.0.1:${target.port}/`
    res.writeHead(302, { location: to }).end()
  })
  // A response of the asked size, chunked (no content-length), or declared.
  big = await listen((req, res) => {
    const u = new URL(req.url!, 'http://x')
    const n = Number(u.searchParams.get('bytes'))
    if (u.searchParams.has('declare')) res.setHeader('content-length', String(n))
    const chunk = Buffer.alloc(64 * 1024, 120)
    let sent = 0
    const more = () => {
      while (sent < n) {
        const c = chunk.subarray(0, Math.min(chunk.length, n - sent))
        sent += c.length
        if (!res.write(c)) return void res.once('drain', more)
      }
      res.end()
    }
    res.on('error', () => undefined)
    more()
  })
})
afterAll(async () => {
  for (const s of [target, redirector, big]) {
    s.server.closeAllConnections()
    await new Promise((r) => s.server.close(r))
  }
})

const request = (host: string, path = '/'): Uint8Array =>
  encodeJson({ method: 'Get', protocol: 'HTTP', host, path, body: null, headers: {} } satisfies EdgelessHTTPRequest)

/** A Node runtime running a workflow with one http-egress resource; calls go to it from the host. */
async function egressWorkflow(options: Parameters<typeof testRuntime>[0] = {}) {
  const rt = testRuntime(options)
  const warnings = collect(rt, 'warning')
  const wf: WorkflowSpec = {
    functions: [],
    resources: [{ name: 'egress', class_type: 'http-egress', output_mapping: {}, configurations: {} }],
    annotations: {},
  }
  const h = await rt.startWorkflow(wf, { name: `egress-${Math.random()}` })
  const call = (req: Uint8Array): Promise<CallResult> => rt.call(h.get('egress')!, req)
  return { rt, warnings, call }
}

const errText = (r: CallResult): string => (r.kind === 'err' ? r.error.message : `not an Err: ${r.kind}`)

describe('(b) http-egress reach', () => {
  test('by default loopback is refused (literal, localhost, numeric forms, IPv4-mapped IPv6) with an Err and a warning event', async () => {
    const { rt, warnings, call } = await egressWorkflow()
    const before = hits
    for (const host of [
      `127.0.0.1:${target.port}`,
      `localhost:${target.port}`,
      `2130706433:${target.port}`,
      `0x7f.0.0.1:${target.port}`,
      `[::ffff:127.0.0.1]:${target.port}`,
      `[::1]:${target.port}`,
    ]) {
      const r = await call(request(host))
      expect(errText(r)).toMatch(/refused: .*loopback address; requests to private networks are refused unless allowed \(--allow-private/)
    }
    expect(hits).toBe(before)
    expect(warnings).toHaveLength(6)
    expect(warnings[0]).toMatchObject({ code: 'resource-error', name: 'egress' })
    expect(warnings[0]!.details).toMatchObject({ hop: 0, policy: 'any host, no private addresses' })
    await rt.shutdown()
  })

  test('a redirect is checked at each hop: an allowed first host cannot bounce the request to a loopback-only one', async () => {
    const { rt, warnings, call } = await egressWorkflow({ egress: { allowHosts: ['127.0.0.1'] } })
    const before = hits
    const r = await call(request(`127.0.0.1:${redirector.port}`, '/to-localhost'))
    expect(errText(r)).toMatch(
      new RegExp(`redirect #1 to http://localhost:${target.port}/ refused: the host localhost is not in the allowed hosts \\(127\\.0\\.0\\.1\\)`),
    )
    expect(hits).toBe(before)
    expect(warnings.at(-1)!.details).toMatchObject({ hop: 1 })
    // The same redirect to the allowed host is followed.
    const ok = await call(request(`127.0.0.1:${redirector.port}`, '/to-127'))
    expect(ok.kind === 'reply' && Buffer.from(parseHttpResponse(ok.data).body!).toString()).toBe('secret')
    expect(hits).toBe(before + 1)
    await rt.shutdown()
  })

  test('a redirect from an allowed private host to a private address not allowed is refused', async () => {
    const { rt, call } = await egressWorkflow({ egress: { allowHosts: ['127.0.0.1', '*.example.com', 'localhost.example.org'] } })
    const r = await call(request(`127.0.0.1:${redirector.port}`, '/to-localhost'))
    expect(r.kind).toBe('err')
    await rt.shutdown()
  })

  test('allowPrivate lets everything through', async () => {
    const { rt, call } = await egressWorkflow({ egress: { allowPrivate: true } })
    for (const host of [`127.0.0.1:${target.port}`, `localhost:${target.port}`, `[::ffff:127.0.0.1]:${target.port}`]) {
      const r = await call(request(host))
      expect(r.kind === 'reply' && parseHttpResponse(r.data).status).toBe(200)
    }
    const r = await call(request(`127.0.0.1:${redirector.port}`, '/to-localhost'))
    expect(r.kind === 'reply' && Buffer.from(parseHttpResponse(r.data).body!).toString()).toBe('secret')
    await rt.shutdown()
  })

  test('the address ranges: IPv4 and IPv6 private, link-local, mapped, NAT64, 6to4; public ones pass', () => {
    const { nonPublicRange } = policyModule
    const bad = [
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '127.255.0.1',
      '::',
      '::1',
      'fe80::1',
      'fc00::1',
      'fd12:3456::1',
      '::ffff:10.0.0.1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::7f00:1',
      '2002:7f00:1::',
      '::127.0.0.1',
      'ff02::1',
      '224.0.0.1',
    ]
    for (const ip of bad) expect([ip, nonPublicRange(ip)]).toEqual([ip, expect.any(String)])
    for (const ip of ['8.8.8.8', '172.32.0.1', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8', '192.169.0.1'])
      expect([ip, nonPublicRange(ip)]).toEqual([ip, undefined])
  })

  test('patterns: exact names (IPv6 in brackets too), wildcards for subdomains only, "*" for any', async () => {
    const check = (hosts: string[], url: string) => policyModule.egressPolicy({ allowHosts: hosts }).check(new URL(url))
    expect(await check(['[::1]'], 'http://[::1]:8080/')).toBeUndefined()
    expect(await check(['*.example.com'], 'http://a.b.example.com/')).toBeUndefined()
    expect(await check(['*.example.com'], 'http://example.com/')).toMatch(/not in the allowed hosts/)
    expect(await check(['*.example.com'], 'http://evilexample.com/')).toMatch(/not in the allowed hosts/)
    expect(await check(['*'], 'http://127.0.0.1/')).toMatch(/loopback/) // "*" names no host exactly
    expect(await check(['*'], 'http://93.184.216.34/')).toBeUndefined()
  })

  test('a host name is resolved and every address checked (Node: dns.lookup; any resolver)', async () => {
    // This machine's own name resolves to a loopback or private address (/etc/hosts).
    const { hostname } = await import('node:os')
    const { rt, call } = await egressWorkflow()
    expect(errText(await call(request(`${hostname()}:${target.port}`)))).toMatch(
      new RegExp(`the host ${hostname().toLowerCase()} resolves to \\S+, which is a (loopback|private) address`),
    )
    await rt.shutdown()
    const policy = policyModule.egressPolicy({ resolve: async () => ['93.184.216.34', '::ffff:169.254.169.254'] })
    expect(await policy.check(new URL('http://metadata.test/'))).toMatch(/resolves to ::ffff:169\.254\.169\.254, which is a link-local address/)
  })

  test('a bad allow-host pattern is refused when the runtime is made', () => {
    expect(() => egressModule.httpEgress({ allowHosts: ['exa mple.com'] })).toThrow(/not a host pattern/)
  })
})

describe('(b) http-egress response size', () => {
  test('a chunked response over the default 16 MiB is cut with an Err and a warning carrying the limit', async () => {
    const { rt, warnings, call } = await egressWorkflow({ egress: { allowHosts: ['127.0.0.1'] } })
    const r = await call(request(`127.0.0.1:${big.port}`, `/?bytes=${17 * MiB}`))
    expect(errText(r)).toMatch(
      /the response body is more than 16777216 bytes \(cut after \d+\), over the limit of 16777216 bytes; raise it with --max-response-bytes/,
    )
    expect(warnings.at(-1)!.details).toMatchObject({ limit: 16 * MiB })
    await rt.shutdown()
  })

  test('a configured limit; a declared content-length over it is refused before reading', async () => {
    const { rt, warnings, call } = await egressWorkflow({ egress: { allowHosts: ['127.0.0.1'], maxResponseBytes: 1000 } })
    expect(errText(await call(request(`127.0.0.1:${big.port}`, '/?bytes=5000')))).toMatch(/more than 1000 bytes/)
    expect(errText(await call(request(`127.0.0.1:${big.port}`, '/?bytes=5000&declare')))).toMatch(
      /the response body is 5000 bytes \(content-length\), over the limit of 1000 bytes/,
    )
    expect(warnings.at(-1)!.details).toMatchObject({ limit: 1000, declared: 5000 })
    const ok = await call(request(`127.0.0.1:${big.port}`, '/?bytes=1000'))
    expect(ok.kind === 'reply' && parseHttpResponse(ok.data).body!.length).toBe(1000)
    await rt.shutdown()
  })
})
