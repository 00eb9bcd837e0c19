import { EdgelessError } from './errors'

/**
 * What the API accepts as a message, reply, init payload or state: bytes, or a string
 * (encoded as UTF-8). Guests always receive bytes.
 *
 * @example
 * ```ts
 * rt.cast(id, 'wakeup'); rt.cast(id, new Uint8Array([0, 255]))
 * ```
 */
export type Payload = Uint8Array | string

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const strictDecoder = new TextDecoder('utf-8', { fatal: true })

/** Bytes of a payload. Strings become UTF-8; bytes are used as given (not copied). */
export function toBytes(p: Payload): Uint8Array {
  if (p instanceof Uint8Array) return p
  if (typeof p === 'string') return encodeUtf8(p)
  throw new EdgelessError('invalid-argument', `A payload must be a Uint8Array or a string, got ${typeof p}. Encode other data first (for example JSON.stringify).`)
}

/** Bytes of a payload that the caller cannot change afterwards: a fresh encoding or a copy. */
export function ownBytes(p: Payload): Uint8Array {
  return typeof p === 'string' ? encodeUtf8(p) : toBytes(p).slice()
}

/**
 * Decode UTF-8 bytes leniently (invalid sequences become U+FFFD).
 *
 * @example
 * ```ts
 * const r = await rt.call(id, 'hi'); if (r.kind === 'reply') console.log(utf8(r.data))
 * ```
 */
export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

/**
 * Decode UTF-8 strictly: `undefined` on invalid input. Short ASCII strings (aliases)
 * take a fast path that allocates nothing but the string.
 */
export function utf8Strict(bytes: Uint8Array, start = 0, end = bytes.length): string | undefined {
  const len = end - start
  if (len <= 64) {
    let s = ''
    let ascii = true
    for (let i = start; i < end; i++) {
      const b = bytes[i]!
      if (b >= 0x80) { ascii = false; break }
      s += String.fromCharCode(b)
    }
    if (ascii) return s
  }
  try {
    return strictDecoder.decode(bytes.subarray(start, end))
  } catch {
    return undefined
  }
}

/**
 * Encode a string as UTF-8. Short ASCII strings (the usual message) skip TextEncoder,
 * which costs about 1 µs per call in Node 20.
 *
 * @example
 * ```ts
 * rt.cast(id, encodeUtf8('wakeup'))
 * ```
 */
export function encodeUtf8(s: string): Uint8Array {
  const n = s.length
  if (n <= 32) {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) return encoder.encode(s)
      out[i] = c
    }
    return out
  }
  return encoder.encode(s)
}
