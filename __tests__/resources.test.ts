import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import IORedis from 'ioredis'
import { EdgelessError, err, noReply, reply, utf8, type CallResult, type EdgeFunction, type InstanceId } from '../lib/index'
import { fileLogResource } from '../lib/node/resources/file-log'
import { httpIngressResource, ingressAddress, MAX_SYNC_BODY } from '../lib/node/resources/http-ingress'
import { redisResource } from '../lib/node/resources/redis'
import { httpEgress, httpEgressResource } from '../lib/resources/http-egress'
import {
  encodeJson,
  methodFromHttp,
  methodToHttp,
  parseHttpRequest,
  parseHttpResponse,
  type EdgelessHTTPRequest,
  type EdgelessHTTPResponse,
} from '../lib/resources/http-types'
import { makeResource as make, WORKFLOW_ID } from './helpers/resources'
import { testRuntime, until, wasmPath } from './helpers/fixtures'

/** The rejection of a promise (fails the test if it resolves). */
async function rejection(p: Promise<unknown> | (() => unknown)): Promise<EdgelessError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    expect(e).toBeInstanceOf(EdgelessError)
    return e as EdgelessError
  }
  throw new Error('expected a rejection')
}

/** A JS function that records the casts it receives. */
function recorder() {
  const casts: Array<{ src: InstanceId; bytes: Uint8Array }> = []
  const fn: EdgeFunction = {
    handleCast: (src, msg) => {
      casts.push({ src, bytes: msg })
    },
  }
  return { casts, fn }
}

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler)
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })))
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** A port nothing listens on (bound once, then released). */
async function freePort(): Promise<number> {
  const { server, port } = await listen(() => undefined)
  await close(server)
  return port
}

/** A raw HTTP request (fetch cannot set Host). */
function rawRequest(
  port: number,
  o: { method?: string; path?: string; headers?: Record<string, string | number>; body?: Uint8Array },
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

/** chrono's `to_rfc3339()` (upstream file-log): 0, 3, 6 or 9 fraction digits and `+00:00`. */
const TS = '\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:\\.\\d{3}|\\.\\d{6}|\\.\\d{9})?\\+00:00'
/** An instance id as upstream's `Display for InstanceId` prints it (file-log's add-source-id). */
const upstreamId = (id: InstanceId) => `InstanceId(node_id: ${id.node}, function_id: ${id.function})`
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

// ---------------------------------------------------------------------------------------

describe('http-types', () => {
  test('methods map to and from HTTP verbs; parsers accept serde JSON and name the bad field', () => {
    expect(methodFromHttp('GET')).toBe('Get')
    expect(methodFromHttp(' patch ')).toBe('Patch')
    expect(methodFromHttp('OPTIONS')).toBeUndefined()
    expect(methodToHttp('Delete')).toBe('DELETE')

    const req: EdgelessHTTPRequest = { method: 'Post', protocol: 'HTTPS', host: 'h:1', path: '/p?q=1', body: [0, 255], headers: { a: 'b' } }
    expect(parseHttpRequest(encodeJson(req))).toEqual(req)
    // serde reads a missing Option as None.
    const { body: _b, ...noBody } = req
    expect(parseHttpRequest(encodeJson(noBody)).body).toBeNull()
    expect(parseHttpResponse(encodeJson({ status: 204, headers: {}, body: null }))).toEqual({ status: 204, headers: {}, body: null })

    const bad = (bytes: Uint8Array | string, re: RegExp, parse: (b: Uint8Array) => unknown = parseHttpRequest) => {
      try {
        parse(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes)
      } catch (e) {
        expect((e as EdgelessError).code).toBe('invalid-argument')
        expect((e as Error).message).toMatch(re)
        return
      }
      throw new Error(`accepted ${String(bytes)}`)
    }
    bad('nope', /not JSON/)
    bad('[1]', /expected a JSON object/)
    bad(new Uint8Array([0xff]), /not valid UTF-8/)
    bad(encodeJson({ ...req, method: 'GET' }), /`method` must be one of "Get"/)
    bad(encodeJson({ ...req, protocol: 'http' }), /`protocol`/)
    bad(encodeJson({ ...req, host: '' }), /`host`/)
    bad(encodeJson({ ...req, path: 1 }), /`path`/)
    bad(encodeJson({ ...req, body: [1, 256] }), /`body\[1\]` must be an integer 0\.\.255 \(the body is an array of bytes\), got 256/)
    bad(encodeJson({ ...req, body: 'abc' }), /`body` must be null or an array/)
    bad(encodeJson({ ...req, headers: { a: 1 } }), /`headers\.a` must be a string/)
    bad(encodeJson({ ...req, headers: undefined }), /`headers` must be an object.*missing/)
    bad(encodeJson({ status: 99, headers: {}, body: null }), /`status` must be an integer HTTP status code/, parseHttpResponse)
    bad(encodeJson({ status: '200', headers: {}, body: null }), /`status`/, parseHttpResponse)
  })
})

// ---------------------------------------------------------------------------------------

describe('file-log', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeless-file-log-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  test('casts and calls from a JS function become lines in order; the call answers an empty reply (upstream Reply("")) once its line is on disk', async () => {
    const rt = testRuntime()
    // A relative filename resolves against baseDir; missing folders are created.
    const { fn, warnings } = await make(fileLogResource, 'log', { filename: 'logs/deep/out.log' }, dir)
    const log = await rt.spawn({ name: 'log', fn })
    const file = join(dir, 'logs/deep/out.log')
    const seen: string[] = []
    const writer = await rt.spawn({
      name: 'writer',
      outputs: { log },
      fn: {
        async handleCall(_src, msg, ctx) {
          ctx.cast('log', 'first')
          ctx.cast('log', 'zweite Zeile: ünïcödé')
          ctx.cast('log', new Uint8Array([0x61, 0xff, 0x62])) // invalid UTF-8 is decoded lossily
          const r = await ctx.call('log', msg)
          // The call's answer comes after its line (and every line before it) is written.
          seen.push(readFileSync(file, 'utf8'))
          return reply(`${r.kind}:${r.kind === 'reply' ? r.data.length : -1}`)
        },
      },
    })
    const r = await rt.call(writer, 'third')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('reply:0')
    expect(seen[0]).toBe('first\nzweite Zeile: ünïcödé\na\uFFFDb\nthird\n')
    // A call straight from the host is answered the same way.
    expect((await rt.call(log, 'from host')).kind).toBe('reply')
    expect(readFileSync(file, 'utf8').split('\n').at(-2)).toBe('from host')
    await rt.shutdown()
    expect(warnings).toEqual([])
  })

  test('add-timestamp and add-source-id prefix each line: "<timestamp> <source-id> <text>"', async () => {
    const rt = testRuntime()
    const variants: Array<{ config: Record<string, string>; file: string }> = [
      { config: { 'add-timestamp': 'true', 'add-source-id': 'true' }, file: 'both.log' },
      { config: { 'add-timestamp': 'true' }, file: 'ts.log' },
      { config: { 'add-source-id': 'true' }, file: 'src.log' },
    ]
    const logs = []
    for (const v of variants) logs.push(await rt.spawn({ name: v.file, fn: (await make(fileLogResource, v.file, { filename: v.file, ...v.config }, dir)).fn }))
    const outputs = Object.fromEntries(logs.map((l, i) => [`log${i}`, l]))
    const sender = await rt.spawn({
      name: 'sender',
      outputs,
      fn: {
        async handleCall(_s, msg, ctx) {
          for (const a of Object.keys(outputs)) await ctx.call(a, msg)
          return noReply()
        },
      },
    })
    const before = Date.now()
    await rt.call(sender, 'hello world')
    const id = esc(upstreamId(sender.id))
    const both = readFileSync(join(dir, 'both.log'), 'utf8')
    const m = new RegExp(`^(${TS}) ${id} hello world\\n$`).exec(both)
    expect(m).not.toBeNull()
    // Date.parse reads at most milliseconds: cut the fraction to 3 digits first.
    const t = Date.parse(m![1]!.replace(/(\.\d{3})\d*/, '$1'))
    expect(t).toBeGreaterThanOrEqual(before - 5)
    expect(t).toBeLessThanOrEqual(Date.now() + 5)
    expect(readFileSync(join(dir, 'ts.log'), 'utf8')).toMatch(new RegExp(`^${TS} hello world\\n$`))
    expect(readFileSync(join(dir, 'src.log'), 'utf8')).toBe(`${upstreamId(sender.id)} hello world\n`)
    await rt.shutdown()
  })

  test('a wasm function logs through it (system_test echoes every message to its log output)', async () => {
    const rt = testRuntime()
    const { fn } = await make(fileLogResource, 'log', { filename: 'wasm.log', 'add-source-id': 'true' }, dir)
    const log = await rt.spawn({ name: 'log', fn })
    const sinks = { out1: recorder(), out2: recorder(), err: recorder() }
    const outputs = {
      log,
      out1: await rt.spawn({ name: 'o1', fn: sinks.out1.fn }),
      out2: await rt.spawn({ name: 'o2', fn: sinks.out2.fn }),
      err: await rt.spawn({ name: 'e', fn: sinks.err.fn }),
    }
    const st = await rt.spawn({ name: 'system_test', module: wasmPath('system_test'), outputs })
    rt.cast(st, '10')
    rt.cast(st, 'abc')
    await until(() => sinks.err.casts.length === 1 && sinks.out1.casts.length === 1)
    await rt.stop(log) // stop writes what is queued, then closes the file
    expect(readFileSync(join(dir, 'wasm.log'), 'utf8')).toBe(`${upstreamId(st.id)} 10\n${upstreamId(st.id)} abc\n`)
    await rt.shutdown()
  })

  test('stop writes every queued line, in order, and appends to an existing file', async () => {
    writeFileSync(join(dir, 'burst.log'), 'existing\n')
    const rt = testRuntime()
    const { fn } = await make(fileLogResource, 'log', { filename: 'burst.log' }, dir)
    const log = await rt.spawn({ name: 'log', fn })
    const n = 5000
    for (let i = 0; i < n; i++) rt.cast(log, `line ${i}`)
    // Stop refuses what is still in the mailbox; once the casts are taken, their lines may
    // still be queued for the disk, and stop must write them all before closing.
    await until(() => rt.inspect(log)!.mailbox === 0)
    await rt.stop(log)
    const lines = readFileSync(join(dir, 'burst.log'), 'utf8').split('\n')
    expect(lines.length).toBe(n + 2)
    expect(lines[0]).toBe('existing')
    expect(lines.slice(1, -1)).toEqual(Array.from({ length: n }, (_, i) => `line ${i}`))
    expect(lines.at(-1)).toBe('')
    await rt.shutdown()
  })

  test('an unopenable path fails with resource-failed naming the path; bad options fail validation', async () => {
    const rt = testRuntime()
    writeFileSync(join(dir, 'plainfile'), 'x')
    const { fn } = await make(fileLogResource, 'log', { filename: 'plainfile/sub/out.log' }, dir)
    const e = await rejection(rt.spawn({ name: 'log', fn }))
    expect(e.code).toBe('resource-failed')
    expect(e.message).toContain(join(dir, 'plainfile/sub/out.log'))
    expect(e.message).toMatch(/configurations\.filename/)
    expect(rt.instances()).toEqual([])

    // Upstream turns add-timestamp / add-source-id on by the key's presence: any value is valid.
    expect(fileLogResource.validate!({ filename: 'a', 'add-source-id': '1' })).toEqual([])
    expect(fileLogResource.validate!({ filename: '' })[0]!.field).toBe('filename')
    // A missing required key is the runner's to report (from `required`), not validate's.
    expect(fileLogResource.validate!({})).toEqual([])
    expect((await rejection(() => fileLogResource.create({ name: 'l', workflowId: WORKFLOW_ID, config: {}, warn: () => undefined }))).message).toMatch(
      /configurations\.filename is required/,
    )
    expect(fileLogResource.required).toEqual(['filename'])
    await rt.shutdown()
  })
})

// ---------------------------------------------------------------------------------------

describe('http-ingress', () => {
  /** A handler function that answers each request JSON with a response derived from it. */
  function echoHandler() {
    const requests: EdgelessHTTPRequest[] = []
    const fn: EdgeFunction = {
      handleCall(_src, msg) {
        const req = parseHttpRequest(msg)
        requests.push(req)
        if (req.path === '/err') return err('refused by the handler')
        if (req.path === '/none') return noReply()
        if (req.path === '/bad') return reply('this is not JSON')
        if (req.path === '/badstatus') return reply(encodeJson({ status: 42, headers: {}, body: null }))
        const res: EdgelessHTTPResponse = {
          status: 201,
          headers: {
            'content-type': 'application/octet-stream',
            'x-path': req.path,
            'x-method': req.method,
            'x-seen-header': req.headers['x-custom'] ?? '',
            'content-length': '999',
          },
          body: req.body ? [...req.body].reverse() : null,
        }
        return reply(encodeJson(res))
      },
    }
    return { requests, fn }
  }

  async function startIngress(config: Record<string, string>, handler: EdgeFunction) {
    const rt = testRuntime()
    const logs: string[] = []
    rt.on('log', (e) => {
      logs.push(e.text)
    })
    const target = await rt.spawn({ name: 'handler', fn: handler })
    const { fn, warnings } = await make(httpIngressResource, 'ingress', { port: '0', ...config })
    const ingress = await rt.spawn({ name: 'ingress', fn, outputs: { new_request: target } })
    const addr = ingressAddress(fn)!
    return { rt, fn, ingress, warnings, logs, port: addr.port, base: `http://127.0.0.1:${addr.port}` }
  }

  test('sync mode: the request JSON reaches the function and its response JSON is the answer (binary body, query, headers)', async () => {
    const h = echoHandler()
    const { rt, fn, port, base, logs, warnings } = await startIngress({}, h.fn)
    expect(port).toBeGreaterThan(0)
    expect(ingressAddress(fn)).toEqual({ address: '127.0.0.1', port })
    expect(logs.some((l) => l.includes(`listening on http://127.0.0.1:${port}`))).toBe(true)

    const body = new Uint8Array([0, 1, 2, 127, 128, 254, 255])
    const res = await fetch(`${base}/items/7?x=1&y=%20z`, { method: 'POST', body, headers: { 'X-Custom': 'abc' } })
    expect(res.status).toBe(201)
    expect(res.headers.get('x-path')).toBe('/items/7?x=1&y=%20z')
    expect(res.headers.get('x-method')).toBe('Post')
    expect(res.headers.get('x-seen-header')).toBe('abc')
    expect(res.headers.get('content-type')).toBe('application/octet-stream')
    // The function's content-length is ignored; the server frames the real body.
    expect(res.headers.get('content-length')).toBe('7')
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([...body].reverse())

    const req = h.requests[0]!
    expect(req).toMatchObject({ method: 'Post', protocol: 'Unknown', host: `127.0.0.1:${port}`, path: '/items/7?x=1&y=%20z', body: [...body] })
    expect(req.headers['x-custom']).toBe('abc')
    expect(Object.keys(req.headers).every((k) => k === k.toLowerCase())).toBe(true)

    // An empty body is [] (upstream sends Some(bytes)); the reply's null body is an empty answer.
    const get = await fetch(`${base}/`)
    expect(get.status).toBe(201)
    expect(await get.text()).toBe('')
    expect(h.requests[1]).toMatchObject({ method: 'Get', body: [], path: '/' })
    expect(warnings).toEqual([])
    await rt.shutdown()
  })

  test('sync mode: Err and NoReply answer 404 as upstream (Err is a warning); an invalid response answers 500 with the reason', async () => {
    const { rt, base, warnings } = await startIngress({}, echoHandler().fn)
    const e = await fetch(`${base}/err`)
    expect(e.status).toBe(404)
    expect(await e.text()).toBe('Not Found')
    expect(warnings[0]).toMatch(/GET \/err with 404 Not Found because the function answered Err \(call-err: .*refused by the handler\)/)
    const n = await fetch(`${base}/none`)
    expect(n.status).toBe(404)
    expect(await n.text()).toBe('Not Found')
    const b = await fetch(`${base}/bad`)
    expect(b.status).toBe(500)
    expect(await b.text()).toMatch(/not a valid EdgelessHTTPResponse \(EdgelessHTTPResponse: the message is not JSON/)
    const s = await fetch(`${base}/badstatus`)
    expect(s.status).toBe(500)
    expect(await s.text()).toMatch(/`status` must be an integer HTTP status code 100\.\.599, got 42/)
    expect(warnings.length).toBe(3)
    await rt.shutdown()
  })

  test('async mode casts the raw body, or base64 text with encode_base64, and answers 200 OK', async () => {
    const raw = recorder()
    const a = await startIngress({ async: 'true' }, raw.fn)
    const res = await fetch(`${a.base}/ingest`, { method: 'POST', body: new Uint8Array([104, 105, 0, 255]) })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('OK')
    await until(() => raw.casts.length === 1)
    expect([...raw.casts[0]!.bytes]).toEqual([104, 105, 0, 255])
    expect(raw.casts[0]!.src).toEqual(a.ingress.id)
    await a.rt.shutdown()

    const b64 = recorder()
    const b = await startIngress({ async: 'true', encode_base64: 'true' }, b64.fn)
    const res2 = await fetch(`${b.base}/`, { method: 'PUT', body: new Uint8Array([0, 255, 1, 2]) })
    expect(res2.status).toBe(200)
    await until(() => b64.casts.length === 1)
    expect(utf8(b64.casts[0]!.bytes)).toBe(Buffer.from([0, 255, 1, 2]).toString('base64'))
    await b.rt.shutdown()
  })

  test('the host filter compares the whole Host header (as upstream); the method filter answers 404 otherwise; `methods` is not read', async () => {
    const h = echoHandler()
    const hosted = await startIngress({ host: 'demo.edgeless.com', method: 'POST, get' }, h.fn)
    const miss = await fetch(`${hosted.base}/`, { method: 'POST', body: 'x' }) // Host: 127.0.0.1:<port>
    expect(miss.status).toBe(404)
    expect(await miss.text()).toBe('Not Found')
    // Upstream compares the header whole: another case or a port is another host.
    expect((await rawRequest(hosted.port, { method: 'POST', headers: { host: 'Demo.Edgeless.COM' }, body: new Uint8Array([1]) })).status).toBe(404)
    expect((await rawRequest(hosted.port, { method: 'POST', headers: { host: 'demo.edgeless.com:7035' }, body: new Uint8Array([1]) })).status).toBe(404)
    const hit = await rawRequest(hosted.port, { method: 'POST', path: '/p', headers: { host: 'demo.edgeless.com' }, body: new Uint8Array([1]) })
    expect(hit.status).toBe(201)
    expect(h.requests.at(-1)!.host).toBe('demo.edgeless.com')
    expect((await rawRequest(hosted.port, { method: 'GET', headers: { host: 'demo.edgeless.com' } })).status).toBe(201)
    expect((await rawRequest(hosted.port, { method: 'DELETE', headers: { host: 'demo.edgeless.com' } })).status).toBe(404)
    expect((await rawRequest(hosted.port, { method: 'OPTIONS', headers: { host: 'demo.edgeless.com' } })).status).toBe(404)
    await hosted.rt.shutdown()

    // Upstream examples write `methods`; upstream reads only `method`, so nothing is filtered (and a warning says so).
    const alias = await startIngress({ methods: 'PUT' }, echoHandler().fn)
    expect((await fetch(`${alias.base}/`, { method: 'POST', body: 'x' })).status).toBe(201)
    expect((await fetch(`${alias.base}/`, { method: 'PUT', body: 'x' })).status).toBe(201)
    expect(alias.warnings).toEqual([expect.stringMatching(/configurations\.methods is not read .*every method is accepted; rename it to "method"/)])
    await alias.rt.shutdown()
  })

  test('a body over the sync-mode limit (about 4 MiB: the body travels as a JSON array of numbers) answers 413', async () => {
    const { rt, port } = await startIngress({}, echoHandler().fn)
    const r = await rawRequest(port, { method: 'POST', headers: { 'content-length': MAX_SYNC_BODY + 1 } }).catch((e: Error) => e)
    expect(r).not.toBeInstanceOf(Error)
    expect((r as { status: number }).status).toBe(413)
    await rt.shutdown()
  })

  test('a port in use fails with resource-failed; stop closes the port; port is required and checked', async () => {
    const { server, port } = await listen((_q, s) => {
      s.end()
    })
    const rt = testRuntime()
    const { fn } = await make(httpIngressResource, 'web', { port: String(port) })
    const e = await rejection(rt.spawn({ name: 'web', fn }))
    expect(e.code).toBe('resource-failed')
    expect(e.message).toBe(`http-ingress "web": port ${port} on 127.0.0.1 is in use; choose another port (configurations.port or --http-port)`)
    await close(server)
    await rt.shutdown()

    const a = await startIngress({}, echoHandler().fn)
    expect((await fetch(`${a.base}/`)).status).toBe(201)
    await a.rt.stop(a.ingress)
    expect(ingressAddress(a.fn)).toBeUndefined()
    await expect(fetch(`${a.base}/`)).rejects.toThrow()
    await a.rt.shutdown()

    const missing = await rejection(() => httpIngressResource.create({ name: 'w', workflowId: WORKFLOW_ID, config: {}, warn: () => undefined }))
    expect(missing.code).toBe('resource-failed')
    expect(missing.message).toMatch(/set configurations\.port/)
    expect(
      (await rejection(() => httpIngressResource.create({ name: 'w', workflowId: WORKFLOW_ID, config: { port: '70000' }, warn: () => undefined }))).code,
    ).toBe('resource-failed')
    expect(httpIngressResource.validate!({ port: '1.5', async: 'yes', method: 'GET,FETCH' }).map((p) => p.field)).toEqual(['async', 'port', 'method'])
  })
})

// ---------------------------------------------------------------------------------------

describe('http-egress', () => {
  let server: Server
  let base: { host: string; port: number }
  const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }> = []

  beforeAll(async () => {
    const s = await listen((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body })
        if (req.url === '/slow') return // never answers
        res.writeHead(req.method === 'POST' ? 202 : 200, {
          'content-type': 'application/octet-stream',
          'X-Got-Method': req.method!,
          'x-got-header': String(req.headers['x-test'] ?? ''),
        })
        res.end(req.method === 'POST' ? Buffer.from([...body].reverse()) : req.method === 'HEAD' ? undefined : Buffer.from('hello get'))
      })
    })
    server = s.server
    base = { host: '127.0.0.1', port: s.port }
  })
  afterAll(async () => {
    await close(server)
  })

  const request = (o: Partial<EdgelessHTTPRequest>): Uint8Array =>
    encodeJson({ method: 'Get', protocol: 'HTTP', host: `${base.host}:${base.port}`, path: '/', body: null, headers: {}, ...o })

  async function egress(config: Record<string, string> = {}) {
    const rt = testRuntime()
    // The test server is on loopback, which the egress refuses unless allowed.
    const { fn, warnings } = await make(httpEgress({ allowHosts: ['127.0.0.1'] }), 'egress', config)
    const ref = await rt.spawn({ name: 'egress', fn })
    return { rt, ref, warnings }
  }

  const response = (r: CallResult): EdgelessHTTPResponse => {
    if (r.kind !== 'reply') throw new Error(`expected a reply, got ${r.kind}${r.kind === 'err' ? `: ${r.error.message}` : ''}`)
    return parseHttpResponse(r.data)
  }

  test('GET and POST round trip status, headers and a binary body, from a calling function', async () => {
    const { rt, ref, warnings } = await egress()
    const results: EdgelessHTTPResponse[] = []
    const caller = await rt.spawn({
      name: 'caller',
      outputs: { http: ref },
      fn: {
        async handleCall(_s, msg, ctx) {
          const r = await ctx.call('http', msg)
          results.push(response(r))
          return noReply()
        },
      },
    })
    await rt.call(caller, request({ path: '/get?q=1&r=%2F', headers: { 'X-Test': 'from-fn', connection: 'keep-alive' } }))
    const get = results[0]!
    expect(get.status).toBe(200)
    expect(get.headers['x-got-method']).toBe('GET') // names lowercased as fetch gives them
    expect(get.headers['x-got-header']).toBe('from-fn')
    expect(Buffer.from(get.body!).toString()).toBe('hello get')
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: '/get?q=1&r=%2F' })
    expect(seen.at(-1)!.headers['accept-encoding']).toBe('identity')

    const bytes = [0, 1, 2, 3, 128, 200, 255]
    await rt.call(caller, request({ method: 'Post', protocol: 'Unknown', path: '/post', body: bytes, headers: { 'content-type': 'application/octet-stream' } }))
    const post = results[1]!
    expect(post.status).toBe(202)
    expect(post.body).toEqual([...bytes].reverse())
    expect([...seen.at(-1)!.body]).toEqual(bytes)
    expect(seen.at(-1)!.headers['content-type']).toBe('application/octet-stream')

    // An empty body is [] (not null); HEAD has none.
    const head = response(await rt.call(ref, request({ method: 'Head', body: [1, 2] })))
    expect(head.status).toBe(200)
    expect(head.body).toEqual([])
    expect(seen.at(-1)!.body.length).toBe(0)
    expect(warnings).toEqual([])
    await rt.shutdown()
  })

  test('a malformed request answers Err with a warning naming the field', async () => {
    const { rt, ref, warnings } = await egress()
    const r1 = await rt.call(ref, 'not json at all')
    expect(r1.kind).toBe('err')
    const r2 = await rt.call(ref, request({ body: [1, 300] }))
    expect(r2.kind === 'err' && r2.error.message).toMatch(/`body\[1\]` must be an integer 0\.\.255 .*, got 300/)
    expect(warnings.length).toBe(2)
    expect(warnings[0]).toMatch(/http-egress "egress": bad request: EdgelessHTTPRequest: the message is not JSON/)
    rt.cast(ref, 'a cast')
    await until(() => warnings.length === 3)
    expect(warnings[2]).toMatch(/only serves calls/)
    await rt.shutdown()
  })

  test('a refused connection and a timeout answer Err with a warning', async () => {
    const { rt, ref, warnings } = await egress({ 'timeout-ms': '300' })
    const port = await freePort()
    const r = await rt.call(ref, request({ host: `127.0.0.1:${port}` }))
    expect(r.kind).toBe('err')
    expect(warnings[0]).toMatch(new RegExp(`GET http://127\\.0\\.0\\.1:${port}/ failed: .*ECONNREFUSED`))

    const started = Date.now()
    const slow = await rt.call(ref, request({ path: '/slow' }))
    expect(slow.kind === 'err' && slow.error.message).toMatch(/no response within 300 ms; raise configurations\.timeout-ms/)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(warnings.length).toBe(2)
    await rt.shutdown()

    expect(
      (await rejection(() => httpEgressResource.create({ name: 'e', workflowId: WORKFLOW_ID, config: { 'timeout-ms': '0' }, warn: () => undefined }))).code,
    ).toBe('resource-failed')
  })
})

// ---------------------------------------------------------------------------------------

describe('redis', () => {
  const REDIS_URL = 'redis://127.0.0.1:6379'
  const run = randomUUID()
  const key = (k: string) => `edgeless-test:${run}:${k}`
  let client: IORedis
  const used: string[] = []

  beforeAll(async () => {
    client = new IORedis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await client.connect()
  })
  afterAll(async () => {
    if (used.length) await client.del(...used)
    await client.quit()
  })

  async function store(config: Record<string, string>, name = 'store') {
    const rt = testRuntime()
    const { fn, warnings } = await make(redisResource, name, { url: REDIS_URL, ...config })
    const ref = await rt.spawn({ name, fn })
    return { rt, ref, warnings }
  }

  test('a cast SETs the configured key (binary-safe, in order); a call GETs the key it names', async () => {
    const k = key('set')
    used.push(k)
    const { rt, ref, warnings } = await store({ key: k })
    const binary = new Uint8Array([0, 255, 10, 13, 0, 128])
    rt.cast(ref, 'first')
    rt.cast(ref, binary)
    // A GET after the casts sees the last SET: commands go out in order on one connection.
    const r = await rt.call(ref, k)
    expect(r.kind === 'reply' && [...r.data]).toEqual([...binary])
    expect([...(await client.getBuffer(k))!]).toEqual([...binary])

    const other = key('get')
    used.push(other)
    await client.set(other, 'value ✓')
    const g = await rt.call(ref, other)
    expect(g.kind === 'reply' && utf8(g.data)).toBe('value ✓')
    // An empty value is an empty reply; a missing key is NoReply.
    const empty = key('empty')
    used.push(empty)
    await client.set(empty, '')
    const e = await rt.call(ref, empty)
    expect(e.kind === 'reply' && e.data.length).toBe(0)
    expect((await rt.call(ref, key('missing'))).kind).toBe('noreply')

    // A failed command (GET on a list) answers Err with a warning.
    const list = key('list')
    used.push(list)
    await client.rpush(list, 'x')
    const bad = await rt.call(ref, list)
    expect(bad.kind === 'err' && bad.error.message).toMatch(/GET .* failed: WRONGTYPE/)
    expect(warnings.length).toBe(1)
    await rt.shutdown()
  })

  test('add-workflow-id prefixes the SET key and the GET keys with the workflow id', async () => {
    const k = key('wf')
    const full = `${WORKFLOW_ID}:${k}`
    used.push(full)
    const { rt, ref } = await store({ key: k, 'add-workflow-id': 'true' })
    rt.cast(ref, 'scoped')
    // The SET is pipelined; the GET below goes out after it on the same connection.
    const r = await rt.call(ref, k)
    expect(r.kind === 'reply' && utf8(r.data)).toBe('scoped')
    expect(await client.get(full)).toBe('scoped')
    expect(await client.exists(k)).toBe(0)
    await rt.shutdown()
  })

  test('a lost connection is re-established, with a warning for the loss and one for the recovery', async () => {
    const k = key('reconnect')
    used.push(k)
    await client.set(k, 'still here')
    const name = `store-${run}` // unique: only this run's connection is killed
    const { rt, ref, warnings } = await store({ key: k }, name)
    // Kill the resource's connection on the server side; it is named after the resource.
    const list = String(await client.call('CLIENT', 'LIST'))
    const id = list
      .split('\n')
      .find((l) => l.includes(` name=edgeless:${name} `))
      ?.match(/\bid=(\d+)/)?.[1]
    expect(id).toBeDefined()
    expect(await client.call('CLIENT', 'KILL', 'ID', id!)).toBe(1)
    await until(() => warnings.some((w) => /reconnected to redis:\/\/127\.0\.0\.1:6379/.test(w)), 5000, 'reconnection')
    expect(warnings[0]).toMatch(new RegExp(`redis "${name}": connection to redis://127\\.0\\.0\\.1:6379/? lost; reconnecting`))
    const r = await rt.call(ref, k)
    expect(r.kind === 'reply' && utf8(r.data)).toBe('still here')
    await rt.shutdown()
  })

  test('an unreachable server fails the start with resource-failed within a few seconds; config is checked', async () => {
    const rt = testRuntime()
    const { fn } = await make(redisResource, 'store', { url: 'redis://127.0.0.1:1', key: 'k' })
    const started = Date.now()
    const e = await rejection(rt.spawn({ name: 'store', fn }))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(e.code).toBe('resource-failed')
    expect(e.message).toMatch(
      /redis "store": cannot connect to redis:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED.*\) after 3 attempts; start Redis there, or set configurations\.url/,
    )
    await rt.shutdown()

    const create = (config: Record<string, string>) =>
      rejection(() => redisResource.create({ name: 's', workflowId: WORKFLOW_ID, config, warn: () => undefined }))
    expect((await create({ key: 'k' })).message).toMatch(/configurations\.url is required/)
    expect((await create({ url: 'http://x', key: 'k' })).message).toMatch(/redis:\/\/ or rediss:\/\//)
    // Upstream: `key` is optional and add-workflow-id is on by presence (any value).
    expect(redisResource.validate!({ url: REDIS_URL, key: 'k', 'add-workflow-id': 'yes' })).toEqual([])
    expect(redisResource.validate!({})).toEqual([])
    expect(redisResource.required).toEqual(['url'])
  })
})
