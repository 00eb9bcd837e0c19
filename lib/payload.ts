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
  throw new EdgelessError(
    'invalid-argument',
    `A payload must be a Uint8Array or a string, got ${typeof p}. Encode other data first (for example JSON.stringify).`,
  )
}

/** Bytes of a payload that the caller cannot change afterwards: a fresh encoding or a copy. */
export function ownBytes(p: Payload): Uint8Array {
  if (typeof p === 'string') return encodeUtf8(p)
  const b = toBytes(p)
  const n = b.length
  if (n > 64) return b.slice()
  // Short payloads (most messages): a new array and a byte loop cost ~35 ns where slice()
  // (species lookup) costs ~53, measured on Node 20; slice was 30% of a cast's time in a
  // burst. (Casts from the host go through the BytePool instead, lib/routing/ownership.ts.)
  const c = new Uint8Array(n)
  for (let i = 0; i < n; i++) c[i] = b[i]!
  return c
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
  return decoder.decode(unshared(bytes))
}

/**
 * SharedArrayBuffer where TextDecoder refuses views of it (browsers; Node accepts them), so
 * those must be copied first. Asked once.
 */
const REFUSED: typeof SharedArrayBuffer | undefined = (() => {
  if (typeof SharedArrayBuffer !== 'function') return undefined
  try {
    decoder.decode(new Uint8Array(new SharedArrayBuffer(1)))
    return undefined
  } catch {
    return SharedArrayBuffer
  }
})()

/** `bytes`, or a copy where it views a shared buffer that TextDecoder refuses (a dense instance's memory, lib/wasm/regions.ts). */
function unshared(bytes: Uint8Array): Uint8Array {
  return REFUSED !== undefined && bytes.buffer instanceof REFUSED ? bytes.slice() : bytes
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
      if (b >= 0x80) {
        ascii = false
        break
      }
      s += String.fromCharCode(b)
    }
    if (ascii) return s
  }
  try {
    return strictDecoder.decode(unshared(bytes.subarray(start, end)))
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

/**
 * Short strings decoded from guest memory (call and cast aliases, log targets), kept with
 * the bytes they came from: a guest that names the same alias again gets the same string
 * back after a byte comparison, without a view, a decoder call or a new string (whose hash
 * a Map lookup would compute again). A few entries, replaced round-robin; what `decode`
 * rejects (`undefined`) is never cached.
 * @internal
 */
export class ShortStrings {
  private readonly keys: Uint8Array[] = []
  private readonly values: string[] = []
  private next = 0

  constructor(
    private readonly decode: (bytes: Uint8Array, start: number, end: number) => string | undefined,
    private readonly size: number,
    /** Longer strings are decoded every time. */
    private readonly maxBytes = 64,
  ) {}

  /** The string of `bytes[start, end)`; the caller has checked the range. */
  get(bytes: Uint8Array, start: number, end: number): string | undefined {
    const len = end - start
    const keys = this.keys
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!
      if (key.length !== len) continue
      let i = 0
      while (i < len && key[i] === bytes[start + i]) i++
      if (i === len) return this.values[k]
    }
    const s = this.decode(bytes, start, end)
    if (s !== undefined && len <= this.maxBytes) {
      const k = this.next
      this.next = (k + 1) % this.size
      keys[k] = bytes.slice(start, end)
      this.values[k] = s
    }
    return s
  }
}

/** {@link utf8} of a range (for {@link ShortStrings}). @internal */
export function utf8Range(bytes: Uint8Array, start: number, end: number): string {
  return decoder.decode(unshared(bytes.subarray(start, end)))
}
