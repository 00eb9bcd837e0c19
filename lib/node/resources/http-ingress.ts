/**
 * The `http-ingress` resource (Node, `node:http`): an HTTP server whose requests become
 * messages to the function mapped to its `new_request` output.
 *
 * Configuration (all strings), read as upstream's `resources/http_ingress.rs` reads it:
 * - `host`: only requests whose `Host` header equals it — the whole value, port included,
 *   case-sensitive, as upstream compares — are served (a request without a `Host` header is
 *   compared as `<address>:<port>` it reached). Empty or absent: any host (upstream's
 *   description promises this for an empty value; its code would match no request).
 * - `method`: comma list of allowed methods (`"POST,GET"`); empty or absent: any of
 *   GET, HEAD, POST, PUT, DELETE, PATCH. Only this key is read: upstream's examples often
 *   write `methods`, which upstream ignores, so such a workflow accepts every method there
 *   and here (a warning at start says so).
 * - `wf_id`: `"true"` serves only requests whose query carries `?wf_id=<workflow id>`
 *   (the first `wf_id` parameter, compared as sent); `"false"` (default) does not look.
 * - `async`: `"true"` casts the body and answers `200 OK` at once; `"false"` (default)
 *   calls and answers with the function's reply.
 * - `encode_base64`: with `async`, cast the body as base64 text instead of raw bytes.
 * - `address`: the interface to listen on (default `127.0.0.1`: exposing a workflow to
 *   the network is a decision, not a default).
 * - `port`: required at run time, 0..65535; `0` picks a free port. The CLI supplies a
 *   default through the runtime's resource defaults.
 *
 * `wf_id`, `async` and `encode_base64` take `true` or `false` in any case (upstream compares
 * them case-insensitively); any other value is a validation problem here, where upstream
 * would read it as false.
 *
 * Each resource runs its own server (upstream shares one server per node and routes by
 * host): on one machine, a port per ingress is the simpler thing to reason about.
 *
 * Answers:
 * - no host/method/wf_id match (or a verb EDGELESS cannot express): `404 Not Found`;
 * - a body over the limit: `413` naming it ({@link MAX_SYNC_BODY}, about 4 MiB, in sync
 *   mode, where the body becomes a JSON array of numbers; {@link MAX_ASYNC_BODY}, 16 MiB,
 *   in async mode, 12 MiB with `encode_base64`);
 * - more than {@link MAX_CONNECTIONS} connections at once: the newest is closed at accept
 *   (a `warning` says how many, once a second at most); request headers must arrive
 *   within 10 s;
 * - not yet started or stopping: `503`;
 * - sync mode: the JSON {@link EdgelessHTTPRequest} (`protocol` `Unknown`, as upstream sets
 *   it; `path` with the query string; `body` the bytes, `[]` when empty; header names
 *   lowercase, repeated headers joined with `, `) is sent with `call('new_request')`; the
 *   {@link EdgelessHTTPResponse} it replies becomes the answer (`content-length`,
 *   `transfer-encoding` and `connection` from the reply are ignored: the server frames the
 *   body itself). A NoReply or an Err answers `404 Not Found`, as upstream does (an Err
 *   is also a warning); a reply that is not a valid response answers `500` with a short
 *   text naming the reason (upstream drops the connection without an answer);
 * - async mode: `cast('new_request', body)` and `200 OK`.
 *
 * The bound port — the point of `port: "0"` — is logged at `info` level and returned by
 * {@link ingressAddress}.
 *
 * @example
 * ```json
 * { "name": "ingress", "class_type": "http-ingress", "output_mapping": { "new_request": "handler" },
 *   "configurations": { "host": "demo.edgeless.com", "method": "POST", "port": "7035" } }
 * ```
 * ```ts
 * const fn = await httpIngressResource.create({ name: 'ingress', workflowId, config: { port: '0' }, warn })
 * await rt.spawn({ name: 'ingress', fn, outputs: { new_request: handler } })
 * const { port } = ingressAddress(fn)!
 * await fetch(`http://127.0.0.1:${port}/hello`)
 * ```
 * @packageDocumentation
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EdgelessError } from '../../errors'
import type { EdgeFunction, FunctionContext } from '../../js-function'
import type { ResourceClass } from '../../workflow/resource'
import {
  encodeJson,
  methodFromHttp,
  parseHttpResponse,
  type EdgelessHTTPMethod,
  type EdgelessHTTPRequest,
  type EdgelessHTTPResponse,
} from '../../resources/http-types'

/**
 * Largest request body in sync mode, in bytes. The body travels as upstream's JSON array of
 * numbers (up to 4 bytes per body byte, "255,"), and that JSON must fit the default
 * `maxPayloadBytes` of a call (16 MiB) with room for the headers: so about 4 MiB, not 16.
 */
export const MAX_SYNC_BODY = Math.floor((16 * 1024 * 1024 - 64 * 1024) / 4)
/** Largest request body in async mode (cast as it is), in bytes: the 16 MiB payload quota; 12 MiB with `encode_base64` (4/3 larger once encoded). */
export const MAX_ASYNC_BODY = 16 * 1024 * 1024
const MAX_ASYNC_BODY_BASE64 = 12 * 1024 * 1024
/** Open connections one ingress serves at once; more are closed at accept (a `warning` with the count, once a second at most). */
export const MAX_CONNECTIONS = 256
/** How long a client may take to send its request headers, in ms (slowloris). */
const HEADERS_TIMEOUT_MS = 10_000

/** Response headers of a function's reply the server sets itself. */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive'])

const addresses = new WeakMap<EdgeFunction, { address: string; port: number }>()

/**
 * Where an `http-ingress` resource listens, once its instance is initialised; `undefined`
 * before that, after it stopped, or for anything that is not an ingress.
 *
 * @example
 * ```ts
 * const fn = await httpIngressResource.create(init)
 * await rt.spawn({ name: 'ingress', fn, outputs: { new_request: handler } })
 * console.log(ingressAddress(fn)) // { address: '127.0.0.1', port: 41237 }
 * ```
 */
export function ingressAddress(fn: EdgeFunction): { address: string; port: number } | undefined {
  const a = addresses.get(fn)
  return a ? { ...a } : undefined
}

const BOOL_KEYS = ['async', 'encode_base64', 'wf_id'] as const

/** Upstream reads these flags with `eq_ignore_ascii_case("true")`: `"TRUE"` is true too. */
function flag(v: string | undefined): boolean {
  return v !== undefined && v.toLowerCase() === 'true'
}

function checkConfig(config: Readonly<Record<string, string>>): Array<{ field: string; message: string }> {
  const problems: Array<{ field: string; message: string }> = []
  for (const k of BOOL_KEYS) {
    const v = config[k]
    if (v !== undefined && v.toLowerCase() !== 'true' && v.toLowerCase() !== 'false')
      problems.push({ field: k, message: `must be "true" or "false", got ${JSON.stringify(v)}` })
  }
  const port = config['port']
  if (port !== undefined && parsePort(port) === undefined) {
    problems.push({ field: 'port', message: `must be a whole number 0..65535 (0 picks a free port), got ${JSON.stringify(port)}` })
  }
  for (const m of splitList(config['method'])) {
    if (!methodFromHttp(m)) problems.push({ field: 'method', message: `lists ${JSON.stringify(m)}, which is not one of GET, HEAD, POST, PUT, DELETE, PATCH` })
  }
  const address = config['address']
  if (address !== undefined && address.trim() === '')
    problems.push({ field: 'address', message: 'must be an interface address such as "127.0.0.1" or "0.0.0.0" (or be left out)' })
  return problems
}

function parsePort(s: string): number | undefined {
  const t = s.trim()
  if (!/^[0-9]{1,5}$/.test(t)) return undefined
  const n = Number(t)
  return n <= 65535 ? n : undefined
}

function splitList(s: string | undefined): string[] {
  return (s ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
}

function text(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra })
  res.end(body)
}

/**
 * The `http-ingress` resource class. See the module documentation for the configuration
 * and the answers it gives.
 *
 * @example
 * ```ts
 * rt.registerResource(httpIngressResource)
 * ```
 */
export const httpIngressResource: ResourceClass = {
  classType: 'http-ingress',
  description: 'An HTTP server; each matching request is called (sync) or cast (async) to the new_request output.',
  validate: checkConfig,
  create(init): EdgeFunction {
    const who = `http-ingress "${init.name}"`
    const problem = checkConfig(init.config)[0]
    if (problem)
      throw new EdgelessError('resource-failed', `${who}: configurations.${problem.field} ${problem.message}.`, { name: init.name, field: problem.field })
    const portText = init.config['port']
    if (portText === undefined) {
      throw new EdgelessError(
        'resource-failed',
        `${who}: no port to listen on; set configurations.port (a number 0..65535, 0 picks a free port) or give the runtime a default for http-ingress (--http-port).`,
        { name: init.name, field: 'port' },
      )
    }
    const port = parsePort(portText)!
    const address = init.config['address']?.trim() || '127.0.0.1'
    // Compared whole, as upstream does; only an empty value means "any host" (see above).
    const hostConfig = init.config['host']
    const wantHost = hostConfig !== undefined && hostConfig !== '' ? hostConfig : undefined
    const allowed = new Set(splitList(init.config['method']).map((m) => methodFromHttp(m)!))
    if (init.config['methods'] !== undefined) {
      init.warn(
        `${who}: configurations.methods is not read (upstream reads only "method"), so ${init.config['method'] === undefined ? 'every method is accepted' : 'only configurations.method filters'}; rename it to "method" to filter by it.`,
        { name: init.name, field: 'methods' },
      )
    }
    const wantWorkflow = flag(init.config['wf_id']) ? init.workflowId : undefined
    const asyncMode = flag(init.config['async'])
    const base64 = flag(init.config['encode_base64'])

    let server: Server | undefined
    let ctx: FunctionContext | undefined
    let serving = false
    /** `address:port` as bound, the `host` of a request that has no Host header (HTTP/1.0). */
    let listenHost = `${address}:${port}`

    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      handle(req, res).catch((e: unknown) => {
        // Nothing in handle should throw; if it does, the client still gets an answer.
        init.warn(`${who}: internal error answering ${req.method} ${req.url}: ${(e as Error)?.message ?? String(e)}`)
        text(res, 500, 'Internal Server Error')
      })
    }

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      if (!serving || !ctx) {
        text(res, 503, 'Service Unavailable', { connection: 'close' })
        req.resume()
        return
      }
      const method = methodFromHttp(req.method ?? '')
      const hostHeader = req.headers.host
      const host = hostHeader ?? listenHost
      const hostOk = wantHost === undefined || host === wantHost
      const workflowOk = wantWorkflow === undefined || queryWfId(req.url ?? '') === wantWorkflow
      if (!method || !hostOk || !workflowOk || (allowed.size > 0 && !allowed.has(method))) {
        req.resume()
        text(res, 404, 'Not Found')
        return
      }
      const maxBody = !asyncMode ? MAX_SYNC_BODY : base64 ? MAX_ASYNC_BODY_BASE64 : MAX_ASYNC_BODY
      const body = await readBody(req, maxBody)
      if (body === 'too-large') {
        text(
          res,
          413,
          `Payload Too Large (the limit is ${maxBody} bytes${asyncMode ? '' : ' in sync mode, where the body travels as a JSON array of numbers'})`,
          { connection: 'close' },
        )
        return
      }
      if (body === 'aborted') return
      const c = ctx
      if (!serving) {
        text(res, 503, 'Service Unavailable')
        return
      }
      if (asyncMode) {
        c.cast('new_request', base64 ? Buffer.from(body).toString('base64') : body)
        text(res, 200, 'OK')
        return
      }
      const request: EdgelessHTTPRequest = {
        method,
        // Upstream sends Unknown: the server cannot tell whether a proxy in front used TLS.
        protocol: 'Unknown',
        host,
        path: req.url ?? '/',
        // Upstream always sends Some(bytes): an empty body is [], never null.
        body: Array.from(body),
        headers: requestHeaders(req),
      }
      const r = await c.call('new_request', encodeJson(request))
      // Upstream answers only a Reply; anything else falls through to its 404.
      if (r.kind === 'err') {
        init.warn(`${who}: answered ${req.method} ${req.url} with 404 Not Found because the function answered Err (${r.error.code}: ${r.error.message})`)
        text(res, 404, 'Not Found')
        return
      }
      if (r.kind === 'noreply') {
        text(res, 404, 'Not Found')
        return
      }
      let response: EdgelessHTTPResponse
      try {
        response = parseHttpResponse(r.data)
      } catch (e) {
        init.warn(`${who}: the reply to ${req.method} ${req.url} is not a valid EdgelessHTTPResponse: ${(e as Error).message}`)
        text(res, 500, `Internal Server Error: the function's reply is not a valid EdgelessHTTPResponse (${(e as Error).message})`)
        return
      }
      respond(req, res, method, response)
    }

    const respond = (req: IncomingMessage, res: ServerResponse, method: EdgelessHTTPMethod, response: EdgelessHTTPResponse): void => {
      if (res.destroyed) return
      for (const [k, v] of Object.entries(response.headers)) {
        if (FRAMING_HEADERS.has(k.toLowerCase())) continue
        try {
          res.setHeader(k, v)
        } catch (e) {
          // Upstream skips headers hyper rejects; the warning says which one and why.
          init.warn(`${who}: skipped header ${JSON.stringify(k)} of the reply to ${req.method} ${req.url}: ${(e as Error).message}`)
        }
      }
      const body = response.body ? Buffer.from(response.body) : Buffer.alloc(0)
      res.statusCode = response.status
      // Node sets content-length from the body; HEAD, 204 and 304 answers carry none.
      if (method === 'Head' || response.status === 204 || response.status === 304) res.end()
      else res.end(body)
    }

    const fn: EdgeFunction = {
      async handleInit(_payload, _state, c) {
        ctx = c
        const srv = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: 60_000 }, onRequest)
        // A cap on open connections (slow clients hold one each); refusals are counted and
        // reported at most once a second.
        srv.maxConnections = MAX_CONNECTIONS
        let dropped = 0
        let reportAt = 0
        let pending: ReturnType<typeof setTimeout> | null = null
        const report = () => {
          pending = null
          reportAt = Date.now() + 1000
          init.warn(`${who}: ${dropped} connection(s) closed at accept so far: ${MAX_CONNECTIONS} were open already (the limit of one ingress).`, {
            dropped,
            maxConnections: MAX_CONNECTIONS,
          })
        }
        srv.on('drop', () => {
          dropped++
          if (pending !== null) return
          const wait = reportAt - Date.now()
          if (wait <= 0) report()
          else (pending = setTimeout(report, wait)).unref?.()
        })
        try {
          await new Promise<void>((resolveListen, rejectListen) => {
            srv.once('error', rejectListen)
            srv.listen(port, address, () => {
              srv.off('error', rejectListen)
              resolveListen()
            })
          })
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code
          const message =
            code === 'EADDRINUSE'
              ? `${who}: port ${port} on ${address} is in use; choose another port (configurations.port or --http-port)`
              : code === 'EACCES'
                ? `${who}: no permission to listen on port ${port} of ${address}; use a port above 1023 (configurations.port or --http-port)`
                : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
                  ? `${who}: cannot listen on address ${address} (${code}); set configurations.address to an address of this machine, e.g. 127.0.0.1 or 0.0.0.0`
                  : `${who}: cannot listen on ${address}:${port}: ${(e as Error).message}`
          throw new EdgelessError('resource-failed', message, { name: init.name, address, port, code }, { cause: e })
        }
        srv.on('error', (e) => init.warn(`${who}: server error: ${e.message}`))
        server = srv
        const bound = srv.address() as AddressInfo
        addresses.set(fn, { address: bound.address, port: bound.port })
        serving = true
        const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
        listenHost = `${shown}:${bound.port}`
        c.log(
          'info',
          `${who} listening on http://${shown}:${bound.port} (${asyncMode ? 'async' : 'sync'}, host ${wantHost ?? 'any'}, methods ${allowed.size ? [...allowed].join(',') : 'any'}${wantWorkflow === undefined ? '' : `, requests must carry ?wf_id=${wantWorkflow}`})`,
        )
      },

      async handleStop() {
        serving = false
        addresses.delete(fn)
        const srv = server
        server = undefined
        if (!srv) return
        await new Promise<void>((done) => {
          srv.close(() => done())
          // Keep-alive and in-flight connections would hold close() open indefinitely.
          srv.closeAllConnections()
        })
      },
    }
    return fn
  },
}

/** The first `wf_id` parameter of a request target, undecoded (upstream splits on `&` and `=`). */
function queryWfId(url: string): string | undefined {
  const q = url.indexOf('?')
  if (q === -1) return undefined
  for (const param of url.slice(q + 1).split('&')) {
    const eq = param.indexOf('=')
    if (eq !== -1 && param.slice(0, eq) === 'wf_id') return param.slice(eq + 1)
  }
  return undefined
}

function requestHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue
    out[k] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}

function readBody(req: IncomingMessage, maxBody: number): Promise<Uint8Array | 'too-large' | 'aborted'> {
  return new Promise((resolveBody) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > maxBody) {
      req.resume()
      resolveBody('too-large')
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    const finish = (v: Uint8Array | 'too-large' | 'aborted') => {
      if (done) return
      done = true
      resolveBody(v)
    }
    req.on('data', (chunk: Buffer) => {
      if (done) return
      size += chunk.length
      if (size > maxBody) {
        chunks.length = 0
        finish('too-large')
        return
      }
      chunks.push(chunk)
    })
    // A Buffer is a Uint8Array; whoever keeps it (cast, call) copies it first.
    req.on('end', () => finish(Buffer.concat(chunks, size)))
    req.on('error', () => finish('aborted'))
    req.on('close', () => finish(req.complete ? Buffer.concat(chunks, size) : 'aborted'))
  })
}
