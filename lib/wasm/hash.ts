/** SHA-256 of `bytes` as lowercase hex (Web Crypto: Node and browsers). Keys the module caches. @internal */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  let s = ''
  for (const b of digest) s += b.toString(16).padStart(2, '0')
  return s
}
