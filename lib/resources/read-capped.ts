/**
 * Reading an HTTP response body with a size limit: refused at once when its declared
 * `content-length` is over, otherwise read chunk by chunk and cut as soon as it passes the
 * limit, so an endless or huge body never becomes host memory. Shared by `http-egress` and
 * the Node entry's module downloads.
 * @packageDocumentation
 */

/**
 * The body of `res`, at most `max` bytes; otherwise the error `tooBig(seen)` builds (with
 * `seen` saying how much was declared or read), after the body is cancelled.
 *
 * @example
 * ```ts
 * const body = await readCapped(await fetch(url), 16 << 20, (seen) => new Error(`body is ${seen}`))
 * ```
 * @internal
 */
export async function readCapped(res: Response, max: number, tooBig: (seen: string) => Error): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined)
    throw tooBig(`${declared} bytes (content-length)`)
  }
  if (!res.body) return new Uint8Array(0)
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > max) {
      await reader.cancel().catch(() => undefined)
      throw tooBig(`more than ${max} bytes (cut after ${total})`)
    }
    chunks.push(value)
  }
  const out = new Uint8Array(total)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}
