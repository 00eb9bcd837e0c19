/**
 * The Redis plumbing the `redisStore` adapter and the `redis` resource share: loading the
 * optional ioredis driver, closing a client, masking a URL's password. Not an entry of the
 * package: nothing here is public API.
 * @packageDocumentation
 */

/** How long dispose() lets QUIT take before cutting the connection. */
const QUIT_TIMEOUT_MS = 2000

/**
 * Close an ioredis client: QUIT, so the server answers what it received, raced against
 * {@link QUIT_TIMEOUT_MS} (a server that does not answer must not hold the close), then
 * disconnect unless the connection already ended ('end' is final; disconnect() there would
 * only arm a timer for a 'close' that never comes). Never rejects. Shared with the `redis`
 * resource; not a public API.
 * @internal
 */
export async function closeRedisClient(c: { readonly status: string; quit(): Promise<unknown>; disconnect(): void }): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    if (c.status === 'ready')
      await Promise.race([
        c.quit(),
        new Promise<void>((r) => {
          timer = setTimeout(r, QUIT_TIMEOUT_MS)
        }),
      ])
  } catch {
    // Going away either way.
  } finally {
    clearTimeout(timer)
    if (c.status !== 'end') c.disconnect()
  }
}

/**
 * Import ioredis on first use (the one loader of the optional driver: this store and the
 * `redis` resource use it) and find its client class. `missing` builds the error for an
 * absent package, `noClass` the one for a package without the class (each caller phrases
 * them for its own users).
 * @internal
 */
export async function importIoredis<C>(missing: (cause: unknown) => Error, noClass: () => Error): Promise<C> {
  let mod: unknown
  try {
    mod = await import('ioredis')
  } catch (e) {
    throw missing(e)
  }
  // ESM sees the CommonJS module as `default` (the class itself); bundlers may expose `Redis`.
  const m = mod as { default?: unknown; Redis?: unknown }
  const inner = m.default as { Redis?: unknown; default?: unknown } | undefined
  const ctor = [m.Redis, m.default, inner?.Redis, inner?.default].find((c) => typeof c === 'function')
  if (!ctor) throw noClass()
  return ctor as C
}

/** A Redis URL fit for logs and errors: the password masked. @internal */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}
