/**
 * The address of a function instance, as upstream EDGELESS defines it: the node it
 * runs on and the function (component) id, both UUIDs. In guest memory each is 16 bytes.
 *
 * @example
 * ```ts
 * const ref = await rt.spawn({ name: 'pong', module: bytes })
 * console.log(ref.id.node, ref.id.function)
 * ```
 */
export interface InstanceId {
  readonly node: string
  readonly function: string
}

const HEX: string[] = []
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'))

/** A fresh random (v4) UUID. Uses WebCrypto, available in Node 20, browsers and Electron. */
export function randomUuid(): string {
  return globalThis.crypto.randomUUID()
}

/** The canonical `8-4-4-4-12` text of 16 bytes at `offset`. */
export function uuidFromBytes(bytes: Uint8Array, offset = 0): string {
  let s = ''
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-'
    s += HEX[bytes[offset + i]!]
  }
  return s
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** True when `s` is a UUID in canonical text form. */
export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s)
}

/** Write the 16 bytes of a UUID into `out` at `offset`. */
export function uuidToBytes(uuid: string, out: Uint8Array, offset = 0): void {
  const hex = uuid.replace(/-/g, '')
  for (let i = 0; i < 16; i++) out[offset + i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
}

/** The 32 bytes (node, then function) of an instance id, as guests see them. */
export function instanceIdBytes(id: InstanceId): Uint8Array {
  const out = new Uint8Array(32)
  uuidToBytes(id.node, out, 0)
  uuidToBytes(id.function, out, 16)
  return out
}

/** Read an instance id from 32 bytes: `node` at `nodeOffset`, `function` at `fnOffset`. */
export function instanceIdFromBytes(bytes: Uint8Array, nodeOffset: number, fnOffset: number): InstanceId {
  return { node: uuidFromBytes(bytes, nodeOffset), function: uuidFromBytes(bytes, fnOffset) }
}

/**
 * Format an instance id for logs: `node/function`.
 *
 * @example
 * ```ts
 * formatInstanceId(ref.id) // '1b4e…/9f0c…'
 * ```
 */
export function formatInstanceId(id: InstanceId): string {
  return `${id.node}/${id.function}`
}
