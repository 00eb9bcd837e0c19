/**
 * The `http-egress` resource: lets functions make outgoing HTTP requests. A function calls
 * it with a JSON {@link EdgelessHTTPRequest}; it performs the request with the platform's
 * global `fetch` and replies a JSON {@link EdgelessHTTPResponse}.
 *
 * Platform-neutral (global `fetch` only, no `node:*`), so it also works in browsers and
 * Electron renderers — within their CORS rules.
 *
 * Configuration (all optional):
 * - `timeout-ms`: give up on a request after this many ms (default 30000). Note that the
 *   *caller's* call timeout (the runtime's `callTimeoutMs`, 5000 by default) usually ends
 *   the wait first; raise it for slow back ends.
 *
 * Behaviour and its reasons:
 * - A malformed request, or a fetch that fails (refused, DNS, TLS, timeout), is answered Err,
 *   as upstream, and reported with `warn` — Err carries no reason to a wasm caller, so the
 *   warning event is where the operator learns why.
 * - `protocol` `Unknown` means plain HTTP (upstream does the same).
 * - A body on a `Get`/`Head` request is dropped: `fetch` refuses one.
 * - Hop-by-hop request headers (`connection`, `transfer-encoding`, `content-length`, ...)
 *   are dropped: `fetch` computes them and refuses some outright, and a function that
 *   forwards an ingress request's headers would otherwise always fail.
 * - `accept-encoding` defaults to `identity` (upstream's client sends none), and when the
 *   server compresses anyway, `fetch` decodes the body, so the reply drops the now-false
 *   `content-encoding`/`content-length` headers.
 * - Requests are served one at a time per resource (a resource is an actor; its handler
 *   awaits the fetch). Upstream runs them concurrently; use several egress resources if
 *   one slow back end must not delay others.
 * - A cast is ignored with a warning: there is nobody to give the response to.
 *
 * @example
 * ```json
 * { "name": "egress", "class_type": "http-egress", "output_mapping": {}, "configurations": { "timeout-ms": "10000" } }
 * ```
 * ```ts
 * const r = await ctx.call('egress', encodeJson({ method: 'Get', protocol: 'HTTPS', host: 'example.com', path: '/', body: null, headers: {} }))
 * if (r.kind === 'reply') console.log(parseHttpResponse(r.data).status)
 * ```
 * @packageDocumentation
 */
import { err, reply } from '../call-result'
import { EdgelessError } from '../errors'
import type { EdgeFunction } from '../js-function'
import type { ResourceClass } from '../workflow/resource'
import { encodeJson, methodToHttp, parseHttpRequest, type EdgelessHTTPRequest, type EdgelessHTTPResponse } from './http-types'

const DEFAULT_TIMEOUT_MS = 30_000

/** Request headers `fetch` computes itself or rejects ("invalid transfer-encoding header"). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer', 'content-length', 'host'])

/** Content codings undici's `fetch` decodes transparently. */
const DECODED_CODINGS = new Set(['gzip', 'x-gzip', 'deflate', 'br'])

function checkConfig(config: Readonly<Record<string, string>>): Array<{ field: string; message: string }> {
  const problems: Array<{ field: string; message: string }> = []
  const t = config['timeout-ms']
  if (t !== undefined && !/^[1-9][0-9]*$/.test(t.trim())) {
    problems.push({ field: 'timeout-ms', message: `must be a positive whole number of milliseconds (e.g. "30000"), got ${JSON.stringify(t)}` })
  }
  return problems
}

/**
 * The `http-egress` resource class. See the module documentation for the contract.
 *
 * @example
 * ```ts
 * const egress = await rt.spawn({ name: 'egress', fn: await httpEgressResource.create({ name: 'egress', workflowId, config: {}, warn }) })
 * ```
 */
export const httpEgressResource: ResourceClass = {
  classType: 'http-egress',
  description: 'Performs the HTTP request a call carries (JSON EdgelessHTTPRequest) and replies the JSON EdgelessHTTPResponse.',
  validate: checkConfig,
  create(init): EdgeFunction {
    const problem = checkConfig(init.config)[0]
    if (problem) throw new EdgelessError('resource-failed', `http-egress "${init.name}": configurations.${problem.field} ${problem.message}.`, { name: init.name, field: problem.field })
    const timeoutMs = init.config['timeout-ms'] ? Number(init.config['timeout-ms'].trim()) : DEFAULT_TIMEOUT_MS
    const who = `http-egress "${init.name}"`

    return {
      handleCast() {
        init.warn(`${who} received a cast; it only serves calls (the response needs somebody to go to). Use call() with a JSON EdgelessHTTPRequest.`)
      },

      async handleCall(_src, msg) {
        let req: EdgelessHTTPRequest
        try {
          req = parseHttpRequest(msg)
        } catch (e) {
          const message = `${who}: bad request: ${(e as Error).message}`
          init.warn(message)
          return err(message)
        }
        const url = `${req.protocol === 'HTTPS' ? 'https' : 'http'}://${req.host}${req.path}`
        try {
          const res = await fetch(url, {
            method: methodToHttp(req.method),
            headers: requestHeaders(req.headers),
            // fetch throws on a body with GET/HEAD, so it is dropped there.
            ...(req.body !== null && req.method !== 'Get' && req.method !== 'Head' ? { body: new Uint8Array(req.body) } : {}),
            signal: AbortSignal.timeout(timeoutMs),
            redirect: 'follow',
          })
          const body = new Uint8Array(await res.arrayBuffer())
          const out: EdgelessHTTPResponse = { status: res.status, headers: responseHeaders(res.headers), body: Array.from(body) }
          return reply(encodeJson(out))
        } catch (e) {
          const message = `${who}: ${methodToHttp(req.method)} ${url} failed: ${fetchFailure(e, timeoutMs)}`
          init.warn(message, { url, method: req.method })
          return err(message)
        }
      },
    }
  },
}

function requestHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  let acceptEncoding = false
  for (const [k, v] of Object.entries(h)) {
    const key = k.toLowerCase()
    if (HOP_BY_HOP.has(key)) continue
    if (key === 'accept-encoding') acceptEncoding = true
    out[k] = v
  }
  // Ask for the body as it is, as upstream's client does: fetch would otherwise request
  // gzip and hand over a decoded body under headers describing the encoded one.
  if (!acceptEncoding) out['accept-encoding'] = 'identity'
  return out
}

function responseHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {}
  headers.forEach((value, key) => {
    // Several set-cookie headers arrive separately; a map keeps one value per name.
    out[key] = key in out ? `${out[key]}, ${value}` : value
  })
  const coding = out['content-encoding']
  if (coding !== undefined && coding.split(',').every((c) => DECODED_CODINGS.has(c.trim().toLowerCase()))) {
    // fetch already decoded the body: these headers would describe bytes we do not hand over.
    delete out['content-encoding']
    delete out['content-length']
  }
  return out
}

function fetchFailure(e: unknown, timeoutMs: number): string {
  // Duck-typed rather than `instanceof Error`: fetch's errors may come from another realm
  // (a vm context, an Electron renderer's preload), where instanceof is false.
  const info = (x: unknown): { name?: unknown; message?: unknown; code?: unknown; cause?: unknown } =>
    typeof x === 'object' && x !== null ? (x as Record<string, unknown>) : { message: String(x) }
  const err = info(e)
  if (err.name === 'TimeoutError' || err.name === 'AbortError') {
    return `no response within ${timeoutMs} ms; raise configurations.timeout-ms if the server is slow`
  }
  const msg = typeof err.message === 'string' ? err.message : String(e)
  const cause = err.cause === undefined ? undefined : info(err.cause)
  const causeMsg = cause && typeof cause.message === 'string' && cause.message !== '' ? cause.message : typeof cause?.code === 'string' ? cause.code : undefined
  return causeMsg && causeMsg !== msg ? `${msg} (${causeMsg})` : msg
}
