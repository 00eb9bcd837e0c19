/**
 * The JSON messages upstream EDGELESS's HTTP resources exchange with functions
 * (`edgeless_http::EdgelessHTTPRequest` / `EdgelessHTTPResponse`), with strict parsers.
 *
 * Upstream serialises them with serde's defaults, so a body (`Vec<u8>`) is a JSON array of
 * numbers and the enums are their variant names (`"Get"`, `"HTTPS"`). A wasm function
 * built against `edgeless_http` reads and writes exactly these shapes, so the parsers here
 * accept what serde accepts and reject, with a message naming the field, what it would
 * refuse — a function that gets a clear Err is easier to fix than one that panics on
 * `unwrap()`.
 *
 * Platform-neutral: no `node:*` imports.
 *
 * @example
 * ```ts
 * const req = parseHttpRequest(msg)                       // throws invalid-argument on bad input
 * const res: EdgelessHTTPResponse = { status: 200, headers: {}, body: [...encodeUtf8('hi')] }
 * return reply(encodeJson(res))
 * ```
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import { encodeUtf8, utf8Strict } from '../payload'

/** Upstream's `EdgelessHTTPMethod` (serde variant names). */
export type EdgelessHTTPMethod = 'Get' | 'Head' | 'Post' | 'Put' | 'Delete' | 'Patch'

/** Upstream's `EdgelessHTTPProtocol`. `Unknown` is treated as plain HTTP by the egress. */
export type EdgelessHTTPProtocol = 'Unknown' | 'HTTP' | 'HTTPS'

/**
 * An HTTP request as a JSON message: what `http-ingress` calls its target with (sync
 * mode) and what `http-egress` expects as a call payload.
 *
 * @example
 * ```ts
 * { method: 'Post', protocol: 'HTTPS', host: 'api.example.com:443', path: '/v1/items?x=1',
 *   body: [104, 105], headers: { 'content-type': 'text/plain' } }
 * ```
 */
export interface EdgelessHTTPRequest {
  method: EdgelessHTTPMethod
  protocol: EdgelessHTTPProtocol
  /** Host, optionally with `:port`. */
  host: string
  /** Path including the query string, starting with `/`. */
  path: string
  /** Body bytes (each 0..255), or `null` for none. */
  body: number[] | null
  headers: Record<string, string>
}

/**
 * An HTTP response as a JSON message: what `http-egress` replies and what an
 * `http-ingress` target replies in sync mode.
 *
 * @example
 * ```ts
 * { status: 200, headers: { 'content-type': 'text/plain' }, body: [79, 75] }
 * ```
 */
export interface EdgelessHTTPResponse {
  /** Body bytes (each 0..255), or `null` for none. */
  body: number[] | null
  status: number
  headers: Record<string, string>
}

const METHODS: readonly EdgelessHTTPMethod[] = ['Get', 'Head', 'Post', 'Put', 'Delete', 'Patch']
const PROTOCOLS: readonly EdgelessHTTPProtocol[] = ['Unknown', 'HTTP', 'HTTPS']

/**
 * The EDGELESS method for an HTTP verb (case-insensitive), or `undefined` for a verb
 * upstream cannot express (OPTIONS, TRACE, CONNECT, ...).
 *
 * @example
 * ```ts
 * methodFromHttp('GET') // 'Get'
 * ```
 */
export function methodFromHttp(verb: string): EdgelessHTTPMethod | undefined {
  const v = verb.trim().toUpperCase()
  return METHODS.find((m) => m.toUpperCase() === v)
}

/**
 * The HTTP verb of an EDGELESS method.
 *
 * @example
 * ```ts
 * methodToHttp('Delete') // 'DELETE'
 * ```
 */
export function methodToHttp(method: EdgelessHTTPMethod): string {
  return method.toUpperCase()
}

/**
 * A JSON value as UTF-8 bytes (the form every resource message travels in).
 *
 * @example
 * ```ts
 * ctx.call('egress', encodeJson(req))
 * ```
 */
export function encodeJson(value: unknown): Uint8Array {
  return encodeUtf8(JSON.stringify(value))
}

/**
 * Parse a JSON `EdgelessHTTPRequest`. Throws an {@link EdgelessError} `invalid-argument`
 * naming the bad field and the expected form.
 *
 * @example
 * ```ts
 * const req = parseHttpRequest(encodeJson({ method: 'Get', protocol: 'HTTP', host: 'h', path: '/', body: null, headers: {} }))
 * ```
 */
export function parseHttpRequest(bytes: Uint8Array): EdgelessHTTPRequest {
  const o = parseObject(bytes, 'EdgelessHTTPRequest')
  const what = 'EdgelessHTTPRequest'
  const method = o['method']
  if (typeof method !== 'string' || !METHODS.includes(method as EdgelessHTTPMethod)) {
    throw bad(what, 'method', `one of ${METHODS.map((m) => JSON.stringify(m)).join(', ')} (serde variant names, not HTTP verbs)`, method)
  }
  const protocol = o['protocol']
  if (typeof protocol !== 'string' || !PROTOCOLS.includes(protocol as EdgelessHTTPProtocol)) {
    throw bad(what, 'protocol', `one of ${PROTOCOLS.map((p) => JSON.stringify(p)).join(', ')}`, protocol)
  }
  const host = o['host']
  if (typeof host !== 'string' || host === '') throw bad(what, 'host', 'a non-empty string such as "example.com" or "example.com:8080"', host)
  const path = o['path']
  if (typeof path !== 'string') throw bad(what, 'path', 'a string such as "/items?x=1"', path)
  return {
    method: method as EdgelessHTTPMethod,
    protocol: protocol as EdgelessHTTPProtocol,
    host,
    path,
    body: parseBody(o['body'], what),
    headers: parseHeaders(o['headers'], what),
  }
}

/**
 * Parse a JSON `EdgelessHTTPResponse`. Throws an {@link EdgelessError} `invalid-argument`
 * naming the bad field and the expected form. `status` must be 100..599: upstream's type
 * is any `u16`, but no HTTP server can send anything else.
 *
 * @example
 * ```ts
 * const res = parseHttpResponse(encodeJson({ status: 204, headers: {}, body: null }))
 * ```
 */
export function parseHttpResponse(bytes: Uint8Array): EdgelessHTTPResponse {
  const what = 'EdgelessHTTPResponse'
  const o = parseObject(bytes, what)
  const status = o['status']
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    throw bad(what, 'status', 'an integer HTTP status code 100..599', status)
  }
  return { status, body: parseBody(o['body'], what), headers: parseHeaders(o['headers'], what) }
}

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  const text = utf8Strict(bytes)
  if (text === undefined) throw new EdgelessError('invalid-argument', `${what}: the message is not valid UTF-8; send a JSON object.`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    throw new EdgelessError('invalid-argument', `${what}: the message is not JSON (${(e as Error).message}); send a JSON object such as ${example(what)}.`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new EdgelessError('invalid-argument', `${what}: expected a JSON object such as ${example(what)}, got ${describe(v)}.`)
  }
  return v as Record<string, unknown>
}

// serde accepts a missing `Option` field as None, so a missing body is null here too.
function parseBody(body: unknown, what: string): number[] | null {
  if (body === undefined || body === null) return null
  if (!Array.isArray(body)) throw bad(what, 'body', 'null or an array of byte values (integers 0..255)', body)
  for (let i = 0; i < body.length; i++) {
    const b: unknown = body[i]
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) {
      throw bad(what, `body[${i}]`, 'an integer 0..255 (the body is an array of bytes)', b)
    }
  }
  return body as number[]
}

function parseHeaders(headers: unknown, what: string): Record<string, string> {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw bad(what, 'headers', 'an object of string values, e.g. {"content-type": "text/plain"} ({} for none)', headers)
  }
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') throw bad(what, `headers.${k}`, 'a string', v)
    out[k] = v
  }
  return out
}

function bad(what: string, field: string, expected: string, got: unknown): EdgelessError {
  return new EdgelessError('invalid-argument', `${what}: \`${field}\` must be ${expected}, got ${describe(got)}.`, { field })
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)'
  const s = JSON.stringify(v)
  return s.length > 60 ? `${s.slice(0, 57)}...` : s
}

function example(what: string): string {
  return what === 'EdgelessHTTPRequest'
    ? '{"method":"Get","protocol":"HTTPS","host":"example.com","path":"/","body":null,"headers":{}}'
    : '{"status":200,"headers":{},"body":null}'
}
