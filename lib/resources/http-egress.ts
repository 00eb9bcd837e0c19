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
 * Who it may reach is not the workflow's to say (a workflow is input): it is the runtime's,
 * through {@link httpEgress}`(options)` ({@link HttpEgressOptions}), the Node Runtime's
 * `egress` option, or the CLI's `--allow-host`, `--allow-private`, `--max-response-bytes`.
 * By default — library and CLI alike — any public host, and no loopback, link-local or
 * private address (the name is resolved and every address checked, IPv4 and IPv6,
 * IPv4-mapped included; Node only — elsewhere only literal addresses and `localhost`).
 * Redirects are followed by hand (at most 10) and each hop checked again. A response body
 * is read incrementally and cut at `maxResponseBytes` (default 16 MiB). Every refusal is an
 * Err to the caller and a `warning` event whose details carry the figure.
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
import { readCapped } from './read-capped'
import { err, reply } from '../call-result'
import { EdgelessError } from '../errors'
import type { EdgeFunction } from '../js-function'
import type { ResourceClass } from '../workflow/resource'
import { egressPolicy, type EgressPolicyOptions } from './egress-policy'
import { encodeJson, methodToHttp, parseHttpRequest, type EdgelessHTTPRequest, type EdgelessHTTPResponse } from './http-types'

const DEFAULT_TIMEOUT_MS = 30_000

/**
 * Default cap of a response body: 16 MiB.
 *
 * @example
 * ```ts
 * httpEgress({ maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES * 4 })
 * ```
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

/** Redirects followed before giving up (fetch's own limit is 20). */
const MAX_REDIRECTS = 10

/**
 * What an {@link httpEgress} resource may reach and read: {@link EgressPolicyOptions}
 * (allowed hosts, private addresses, the resolver) plus the response size cap.
 *
 * @example
 * ```ts
 * httpEgress({ allowHosts: ['*.example.com'], maxResponseBytes: 1 << 20 })
 * ```
 */
export interface HttpEgressOptions extends EgressPolicyOptions {
  /** Largest response body handed to the guest, in bytes. Default {@link DEFAULT_MAX_RESPONSE_BYTES} (16 MiB). */
  maxResponseBytes?: number
}

/** A refusal by the policy or a limit: the Err the guest gets, with figures for the warning event. */
class Refused extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message)
  }
}

/** Request headers `fetch` computes itself or rejects ("invalid transfer-encoding header"). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'content-length',
  'host',
])

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
 * An `http-egress` resource class with its own reach and limits (see {@link HttpEgressOptions}).
 * The Node Runtime registers `httpEgress({ ...options.egress, resolve: dns lookup })`.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ resources: [httpEgress({ allowHosts: ['127.0.0.1'] })] })
 * ```
 */
export function httpEgress(options: HttpEgressOptions = {}): ResourceClass {
  const policy = egressPolicy(options)
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new EdgelessError('invalid-argument', `http-egress: maxResponseBytes must be a whole number of bytes, got ${String(options.maxResponseBytes)}.`)
  }
  return {
    classType: 'http-egress',
    description: 'Performs the HTTP request a call carries (JSON EdgelessHTTPRequest) and replies the JSON EdgelessHTTPResponse.',
    validate: checkConfig,
    create(init): EdgeFunction {
      const problem = checkConfig(init.config)[0]
      if (problem)
        throw new EdgelessError('resource-failed', `http-egress "${init.name}": configurations.${problem.field} ${problem.message}.`, {
          name: init.name,
          field: problem.field,
        })
      const timeoutMs = init.config['timeout-ms'] ? Number(init.config['timeout-ms'].trim()) : DEFAULT_TIMEOUT_MS
      const who = `http-egress "${init.name}"`

      /** Fetch `url`, following redirects by hand so that each hop is checked. */
      const fetchChecked = async (first: URL, req: EdgelessHTTPRequest, signal: AbortSignal): Promise<Response> => {
        let url = first
        let method = methodToHttp(req.method)
        let headers = requestHeaders(req.headers)
        // fetch throws on a body with GET/HEAD, so it is dropped there.
        let body: Uint8Array<ArrayBuffer> | undefined =
          req.body !== null && req.method !== 'Get' && req.method !== 'Head' ? new Uint8Array(req.body) : undefined
        for (let hop = 0; ; hop++) {
          const why = await policy.check(url)
          if (why) throw new Refused(`${hop === 0 ? '' : `redirect #${hop} to ${url.href} refused: `}${why}`, { url: url.href, hop, policy: policy.summary })
          const res = await fetch(url, { method, headers, ...(body ? { body } : {}), signal, redirect: 'manual' })
          const location = res.headers.get('location')
          if (res.type === 'opaqueredirect')
            throw new Refused(`${url.href} redirects, and this platform hides where to (fetch "opaqueredirect"), so the next hop cannot be checked`, {
              url: url.href,
              hop,
            })
          if (![301, 302, 303, 307, 308].includes(res.status) || location === null) return res
          await res.body?.cancel().catch(() => undefined)
          if (hop >= MAX_REDIRECTS)
            throw new Refused(`more than ${MAX_REDIRECTS} redirects, the last to ${location}`, { url: url.href, redirects: hop + 1, limit: MAX_REDIRECTS })
          const next = new URL(location, url)
          // As fetch does: 303 (and 301/302 after a POST) continue as a GET without a body;
          // credentials do not travel to another origin.
          if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
            if (method !== 'HEAD') method = 'GET'
            body = undefined
          }
          if (next.origin !== url.origin) {
            headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !['authorization', 'cookie', 'proxy-authorization'].includes(k.toLowerCase())))
          }
          url = next
        }
      }

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
          const href = `${req.protocol === 'HTTPS' ? 'https' : 'http'}://${req.host}${req.path}`
          let url: URL
          try {
            url = new URL(href)
          } catch {
            const message = `${who}: bad request: ${JSON.stringify(href.slice(0, 200))} is not a valid URL; check host and path`
            init.warn(message)
            return err(message)
          }
          try {
            const signal = AbortSignal.timeout(timeoutMs)
            const res = await fetchChecked(url, req, signal)
            const body = await readBody(res, maxBytes)
            const out: EdgelessHTTPResponse = { status: res.status, headers: responseHeaders(res.headers), body: Array.from(body) }
            return reply(encodeJson(out))
          } catch (e) {
            if (e instanceof Refused) {
              const message = `${who}: ${methodToHttp(req.method)} ${url.href} refused: ${e.message}`
              init.warn(message, { url: url.href, method: req.method, ...e.details })
              return err(message)
            }
            const message = `${who}: ${methodToHttp(req.method)} ${url.href} failed: ${fetchFailure(e, timeoutMs)}`
            init.warn(message, { url: url.href, method: req.method })
            return err(message)
          }
        },
      }
    },
  }
}

/**
 * The `http-egress` resource class with the default reach: any public host; no private
 * address (literal addresses and `localhost` only — it has no resolver; the Node Runtime
 * registers one that resolves names). See the module documentation for the contract.
 *
 * @example
 * ```ts
 * const egress = await rt.spawn({ name: 'egress', fn: await httpEgressResource.create({ name: 'egress', workflowId, config: {}, warn }) })
 * ```
 */
export const httpEgressResource: ResourceClass = httpEgress()

/** The body, read chunk by chunk and refused as soon as it passes `max` bytes. */
function readBody(res: Response, max: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  return readCapped(
    res,
    max,
    (seen) =>
      new Refused(`the response body is ${seen}, over the limit of ${max} bytes; raise it with --max-response-bytes (API: maxResponseBytes) or ask for less`, {
        limit: max,
        ...(Number.isFinite(declared) ? { declared } : {}),
      }),
  )
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
  if (coding?.split(',').every((c) => DECODED_CODINGS.has(c.trim().toLowerCase()))) {
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
