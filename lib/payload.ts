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
  if (typeof p === 'string') return encoder.encode(p)
  throw new EdgelessError('invalid-argument', `A payload must be a Uint8Array or a string, got ${typeof p}. Encode other data first (for example JSON.stringify).`)
}

/** Bytes of a payload that the caller cannot change afterwards: a fresh encoding or a copy. */
export function ownBytes(p: Payload): Uint8Array {
  return typeof p === 'string' ? encoder.encode(p) : toBytes(p).slice()
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

/** Encode a string as UTF-8. */
export function encodeUtf8(s: string): Uint8Array {
  return encoder.encode(s)
}
