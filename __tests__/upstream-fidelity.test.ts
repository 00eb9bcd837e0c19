// Upstream fidelity (issue 20): the same workflow gives the same observable result here as on
// an upstream EDGELESS node. Each test names the upstream code it reproduces (repository
// edgeless-project/edgeless, files under edgeless_node/src/ unless said otherwise) and runs
// the real thing: real HTTP requests, real files, the real Redis on 127.0.0.1:6379, the CLI.
import { randomUUID } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals'
import IORedis from 'ioredis'
import { EdgelessError, err, noReply, reply, utf8, type EdgeFunction, type InstanceId } from '../lib/index'
import { main } from '../lib/node/cli'
import { chronoRfc3339, fileLogResource } from '../lib/node/resources/file-log'
import { httpIngressResource, ingressAddress } from '../lib/node/resources/http-ingress'
import { redisResource } from '../lib/node/resources/redis'
import { makeResource as make, WORKFLOW_ID } from './helpers/resources'
import { testRuntime, until } from './helpers/fixtures'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A raw HTTP request (fetch cannot set Host). */
function rawRequest(
  port: number,
  o: { method?: string; path?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers ?? {} }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

// ---------------------------------------------------------------------------------------

describe('http-ingress as upstream resources/http_ingress.rs', () => {
  /** An ingress (sync unless config says otherwise) whose target records the raw request JSON and answers by path. */
  async function ingress(config: Record<string, string>) {
    const rt = testRuntime()
    const raw: string[] = []
    const handler: EdgeFunction = {
      handleCall(_src, msg) {
        const text = utf8(msg)
        raw.push(text)
        const path = (JSON.parse(text) as { path: string }).path
        if (path.startsWith('/noreply')) return noReply()
        if (path.startsWith('/err')) return err('the handler refused')
        return reply(JSON.stringify({ status: 200, headers: {}, body: [...Buffer.from('handled')] }))
      },
    }
    const target = await rt.spawn({ name: 'handler', fn: handler })
    const { fn, warnings } = await make(httpIngressResource, 'ingress', { port: '0', ...config })
    await rt.spawn({ name: 'ingress', fn, outputs: { new_request: target } })
    const { port } = ingressAddress(fn)!
    return { rt, raw, warnings, port, base: `http://127.0.0.1:${port}` }
  }

  test('IngressService::call: a function answering NoReply or Err gets upstream\'s 404 "Not Found" (only a Reply becomes the answer)', async () => {
    const { rt, base, warnings } = await ingress({})
    for (const path of ['/noreply', '/err']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', body: 'x' })
      expect(res.status).toBe(404)
      expect(await res.text()).toBe('Not Found')
    }
    // The Err is not lost: it is a warning naming the request and the error.
    expect(warnings).toEqual([expect.stringMatching(/POST \/err with 404 Not Found because the function answered Err \(.*the handler refused\)/)])
    const ok = await fetch(`${base}/ok`)
    expect(ok.status).toBe(200)
    expect(await ok.text()).toBe('handled')
    await rt.shutdown()
  })

  test('IngressService::call: the EdgelessHTTPRequest has protocol "Unknown" and an empty body is [] (body: Some(Vec::from(data)))', async () => {
    const { rt, raw, port, base } = await ingress({})
    expect((await fetch(`${base}/empty?q=1`)).status).toBe(200)
    const sent = JSON.parse(raw[0]!) as Record<string, unknown>
    expect(sent).toMatchObject({ method: 'Get', protocol: 'Unknown', host: `127.0.0.1:${port}`, path: '/empty?q=1', body: [] })
    // The JSON itself, as serde writes it: never `"body":null` for a request without a body.
    expect(raw[0]).toContain('"body":[]')
    expect(raw[0]).not.toContain('null')
    await rt.shutdown()
  })

  test('start() / IngressService::call: wf_id "true" serves only requests whose query carries ?wf_id=<workflow id> (upstream workflow http_ingress/workflow-async.json, unchanged)', async () => {
    // Upstream's example: an async ingress with wf_id, casting to a file-log with timestamps.
    const dir = mkdtempSync(join(tmpdir(), 'edgeless-fidelity-'))
    try {
      const file = join(dir, 'workflow-async.json')
      copyFileSync(join(root, 'fixtures/upstream/http_ingress--workflow-async.json'), file)
      const rt = testRuntime()
      const logs: string[] = []
      rt.on('log', (e) => {
        logs.push(e.text)
      })
      const wf = await rt.startWorkflow(file, { resourceConfig: { 'http-ingress': { port: '0' } } })
      const line = logs.find((l) => l.includes('listening on http://127.0.0.1:'))!
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1])
      expect(line).toContain(`requests must carry ?wf_id=${wf.id}`)

      const without = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'no id' })
      expect(without.status).toBe(404)
      expect(await without.text()).toBe('Not Found')
      expect((await fetch(`http://127.0.0.1:${port}/?wf_id=${randomUUID()}`, { method: 'POST', body: 'other id' })).status).toBe(404)
      // Upstream takes the first wf_id parameter, wherever it is in the query.
      const ok = await fetch(`http://127.0.0.1:${port}/any/path?x=1&wf_id=${wf.id}&wf_id=other`, { method: 'POST', body: 'hello upstream' })
      expect(ok.status).toBe(200)
      expect(await ok.text()).toBe('OK')
      await wf.stop()
      // Only the request with the right id reached the log (with chrono's timestamp).
      expect(readFileSync(join(dir, 'out.log'), 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00 hello upstream\n$/)
      await rt.shutdown()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('start(): only the key `method` is read, so `methods: POST` (upstream http_ingress/workflow.json) filters nothing; a warning says so', async () => {
    const { rt, raw, port, warnings } = await ingress({ host: 'demo.edgeless.com', methods: 'POST' })
    for (const method of ['GET', 'POST', 'DELETE']) {
      expect((await rawRequest(port, { method, path: '/m', headers: { host: 'demo.edgeless.com' } })).status).toBe(200)
    }
    expect(raw).toHaveLength(3)
    expect(warnings).toEqual([expect.stringMatching(/configurations\.methods is not read \(upstream reads only "method"\), so every method is accepted/)])
    await rt.shutdown()

    const filtered = await ingress({ method: 'POST' })
    expect((await rawRequest(filtered.port, { method: 'GET' })).status).toBe(404)
    expect((await rawRequest(filtered.port, { method: 'POST', body: 'x' })).status).toBe(200)
    await filtered.rt.shutdown()
  })

  test('IngressService::call: the Host header is compared whole (desc.host == Some(host)); an empty `host` means any host, as upstream documents', async () => {
    const { rt, port, raw } = await ingress({ host: 'demo.edgeless.com' })
    const status = async (host: string) => (await rawRequest(port, { headers: { host } })).status
    expect(await status('demo.edgeless.com')).toBe(200)
    expect(await status('demo.edgeless.com:80')).toBe(404)
    expect(await status('Demo.Edgeless.com')).toBe(404)
    expect(await status('other.example')).toBe(404)
    expect((JSON.parse(raw[0]!) as { host: string }).host).toBe('demo.edgeless.com')
    await rt.shutdown()

    // Upstream's code would match no request with host "" (it compares Some("")); its
    // description says "If not empty, requires ...": the documented behaviour is kept.
    const any = await ingress({ host: '' })
    expect((await rawRequest(any.port, { headers: { host: 'whatever.example:1234' } })).status).toBe(200)
    await any.rt.shutdown()
  })
})

// ---------------------------------------------------------------------------------------

describe('file-log as upstream resources/file_log.rs', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeless-fidelity-log-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  test("FileLogResource::new: timestamps are chrono's Utc::now().to_rfc3339(): 0, 3, 6 or 9 fraction digits and +00:00", () => {
    expect(chronoRfc3339(1_700_000_000_000_000_000n)).toBe('2023-11-14T22:13:20+00:00')
    expect(chronoRfc3339(1_700_000_000_120_000_000n)).toBe('2023-11-14T22:13:20.120+00:00')
    expect(chronoRfc3339(1_700_000_000_123_456_000n)).toBe('2023-11-14T22:13:20.123456+00:00')
    expect(chronoRfc3339(1_700_000_000_000_000_001n)).toBe('2023-11-14T22:13:20.000000001+00:00')
    expect(chronoRfc3339(1_700_000_000_100_000_100n)).toBe('2023-11-14T22:13:20.100000100+00:00')
    expect(chronoRfc3339(0n)).toBe('1970-01-01T00:00:00+00:00')
  })

  test('start(): add-timestamp / add-source-id are on when the key is present (contains_key), whatever its value; the source id prints as InstanceId(node_id: …, function_id: …)', async () => {
    const rt = testRuntime()
    const { fn, warnings } = await make(fileLogResource, 'log', { filename: 'out.log', 'add-timestamp': 'false', 'add-source-id': '' }, dir)
    const log = await rt.spawn({ name: 'log', fn })
    let sender: InstanceId | undefined
    const writer = await rt.spawn({
      name: 'writer',
      outputs: { log },
      fn: {
        async handleCall(_s, msg, ctx) {
          sender = ctx.slf()
          await ctx.call('log', msg)
          return noReply()
        },
      },
    })
    const before = Date.now()
    await rt.call(writer, 'hello world')
    const text = readFileSync(join(dir, 'out.log'), 'utf8')
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6}|\.\d{9})?\+00:00) (.*) hello world\n$/.exec(text)
    expect(m).not.toBeNull()
    expect(m![2]).toBe(`InstanceId(node_id: ${sender!.node}, function_id: ${sender!.function})`)
    const t = Date.parse(m![1]!.replace(/(\.\d{3})\d*/, '$1'))
    expect(t).toBeGreaterThanOrEqual(before - 5)
    expect(t).toBeLessThanOrEqual(Date.now() + 5)
    // The surprise ("false" turns it on) is said once, at creation, for each such key.
    expect(warnings).toEqual([
      expect.stringMatching(/configurations\.add-timestamp is "false", but as upstream the option is on whenever the key is present; remove the key/),
      expect.stringMatching(/configurations\.add-source-id is "", but as upstream/),
    ])
    expect(fileLogResource.validate!({ filename: 'x.log', 'add-timestamp': 'no' })).toEqual([])
    await rt.shutdown()
  })

  test('FileLogResource::new: a call is answered Reply("") — an empty reply, not NoReply — once its line is written', async () => {
    const rt = testRuntime()
    const { fn } = await make(fileLogResource, 'log', { filename: 'calls.log' }, dir)
    const log = await rt.spawn({ name: 'log', fn })
    const r = await rt.call(log, 'called')
    expect(r.kind).toBe('reply')
    expect(r.kind === 'reply' && r.data.length).toBe(0)
    expect(readFileSync(join(dir, 'calls.log'), 'utf8')).toBe('called\n')
    await rt.shutdown()
  })
})

// ---------------------------------------------------------------------------------------

describe('redis as upstream resources/redis.rs', () => {
  const REDIS_URL = 'redis://127.0.0.1:6379'
  const prefix = `edgeless-fidelity:${randomUUID()}`
  let client: IORedis

  beforeAll(async () => {
    client = new IORedis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await client.connect()
  })
  afterAll(async () => {
    const keys = await client.keys(`*${prefix}*`)
    if (keys.length) await client.del(...keys)
    await client.quit()
  })

  test('RedisResourceProvider::start: `key` is optional; without it a cast is dropped with a warning (upstream: "Invalid SET operation ... without a \'key\'") and a call still GETs', async () => {
    const rt = testRuntime()
    // Validation does not require the key (upstream's spec: "Key for SET operations (optional)").
    const problems = await rt.validateWorkflow({
      functions: [],
      resources: [{ name: 'reader', class_type: 'redis', output_mapping: {}, configurations: { url: REDIS_URL } }],
      annotations: {},
    })
    expect(problems).toEqual([])

    const existing = `${prefix}:existing`
    await client.set(existing, 'stored before')
    const { fn, warnings } = await make(redisResource, 'reader', { url: REDIS_URL })
    const ref = await rt.spawn({ name: 'reader', fn })
    rt.cast(ref, 'no key to set this to')
    rt.cast(ref, 'nor this')
    await until(() => warnings.length === 2)
    expect(warnings[0]).toMatch(/redis "reader": a cast was dropped: without configurations\.key there is no key to SET \(1 dropped so far\)/)
    expect(warnings[1]).toMatch(/\(2 dropped so far\)/)
    const r = await rt.call(ref, existing)
    expect(r.kind === 'reply' && utf8(r.data)).toBe('stored before')
    // Nothing was written anywhere by the dropped casts.
    expect(await client.keys(`*${prefix}*`)).toEqual([existing])
    await rt.shutdown()
  })

  test('RedisResourceProvider::start: add-workflow-id is on when present (contains_key), whatever its value', async () => {
    const rt = testRuntime()
    const k = `${prefix}:scoped`
    const { fn, warnings } = await make(redisResource, 'store', { url: REDIS_URL, key: k, 'add-workflow-id': 'false' })
    const ref = await rt.spawn({ name: 'store', fn })
    rt.cast(ref, 'v')
    const r = await rt.call(ref, k)
    expect(r.kind === 'reply' && utf8(r.data)).toBe('v')
    expect(await client.get(`${WORKFLOW_ID}:${k}`)).toBe('v')
    expect(await client.exists(k)).toBe(0)
    expect(warnings).toEqual([expect.stringMatching(/add-workflow-id is "false", but as upstream the option is on whenever the key is present/)])
    await rt.shutdown()
  })
})

// ---------------------------------------------------------------------------------------

describe('CLI logs as upstream edgeless_telemetry/src/telemetry_events.rs (EventLogger)', () => {
  test('a function log line shows the log target before the text, as EventLogger prints "{target}: {msg}"', async () => {
    const out: string[] = []
    const code = await main(['run', join(root, 'examples/ping-pong/workflow.json'), '--duration', '300'], {
      out: (s) => {
        out.push(s)
      },
      err: () => undefined,
    })
    expect(code).toBe(0)
    // The ping fixture logs with target "ping", the pong fixture with "pong".
    expect(out.some((l) => /^\S+Z INFO {2}pinger ping: Pinger: 'Init' called$/.test(l))).toBe(true)
    expect(out.some((l) => /^\S+Z INFO {2}ponger pong: Ponger: 'Init' called$/.test(l))).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------

describe('function types and resource classes upstream has and this runtime does not', () => {
  const container = {
    functions: [
      {
        name: 'double',
        class_specification: { id: 'double', function_type: 'CONTAINER', version: '0.1', code: 'container:double:latest', outputs: [] },
        output_mapping: {},
        annotations: {},
      },
    ],
    resources: [],
    annotations: {},
  }

  test('a CONTAINER function is refused, naming what to do instead; a JS stand-in (replace) runs it', async () => {
    const rt = testRuntime()
    const [p] = await rt.validateWorkflow(container)
    expect(p).toMatchObject({ entity: 'function', name: 'double', field: 'class_specification.function_type' })
    expect(p!.message).toMatch(
      /"CONTAINER" is not supported here: this runtime runs WebAssembly functions only \("RUST_WASM"\)\. Build the function as a \.wasm module .* or stand a JS function in for it with startWorkflow\(file, \{ replace: \{ "double": fn \} \}\)/,
    )
    await expect(rt.startWorkflow(container)).rejects.toBeInstanceOf(EdgelessError)

    const double: EdgeFunction = { handleCall: (_src, msg) => reply(String(2 * Number(utf8(msg)))) }
    const wf = await rt.startWorkflow(container, { replace: { double } })
    const r = await wf.get('double')!.call('21')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('42')
    await rt.shutdown()
  })

  test('a dda resource (upstream class_type "dda") is refused, saying it is upstream\'s and how to stand in for it', async () => {
    const rt = testRuntime()
    const problems = await rt.validateWorkflow({
      functions: [],
      resources: [{ name: 'dda-1', class_type: 'dda', output_mapping: {}, configurations: { dda_url: 'http://localhost:12000' } }],
      annotations: {},
    })
    expect(problems).toHaveLength(1)
    expect(problems[0]!.message).toMatch(
      /"dda" is not a resource class of this runtime .*it is upstream's resource for a Data Distribution Agent .*register a class of that name with runtime\.registerResource\(\), or stand a JS function in .*replace: \{ "dda-1": fn \}/,
    )
    await rt.shutdown()
  })
})
