/**
 * Reading a file named by input (a workflow's `code`, the workflow file itself) without
 * letting the name decide how much is read or whether the read ever ends: only regular
 * files, at most a given size. `/dev/zero` would otherwise be read until memory runs out,
 * and a FIFO would block a thread of the pool forever.
 * @packageDocumentation
 */
import { readCapped } from '../resources/read-capped'
import { constants, type Stats } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { EdgelessError } from '../errors'

/**
 * Default largest module file read: 256 MiB.
 *
 * @example
 * ```ts
 * new Runtime({ maxModuleBytes: DEFAULT_MAX_MODULE_BYTES * 2 })
 * ```
 */
export const DEFAULT_MAX_MODULE_BYTES = 256 * 1024 * 1024

/**
 * Default largest workflow file read: 16 MiB.
 *
 * @example
 * ```ts
 * new Runtime({ maxWorkflowBytes: 1024 * 1024 })
 * ```
 */
export const DEFAULT_MAX_WORKFLOW_BYTES = 16 * 1024 * 1024

/** What a non-regular file is, in words. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  return 'not a regular file'
}

/**
 * How a file named by input may be read: what it is for, its limit, the option that raises it.
 *
 * @example
 * ```ts
 * { what: 'a module', maxBytes: DEFAULT_MAX_MODULE_BYTES, option: 'maxModuleBytes' }
 * ```
 */
export interface ReadLimit {
  /** `a module`, `a workflow file`. */
  what: string
  maxBytes: number
  /** The option (and CLI flag) that changes the limit, for the message. */
  option: string
}

/**
 * Why `path` may not be read under `limit` (stat only: does not open, so a FIFO cannot
 * block), or undefined when it may.
 *
 * @example
 * ```ts
 * await refusal('/dev/zero', { what: 'a module', maxBytes: 1 << 28, option: 'maxModuleBytes' })  // "… is not a regular file (a character device) …"
 * ```
 */
export async function refusal(path: string, limit: ReadLimit): Promise<string | undefined> {
  let st: Stats
  try {
    st = await stat(path)
  } catch {
    return undefined // the read reports a missing file in its own words
  }
  return refusalOf(path, st, limit)
}

function refusalOf(path: string, st: Stats, limit: ReadLimit): string | undefined {
  if (!st.isFile())
    return `${path} is not a regular file (${kindOf(st)}); ${limit.what} must be an ordinary file (a device, FIFO or socket may never end or never answer)`
  if (st.size > limit.maxBytes)
    return `${path} is ${st.size} bytes, over the limit of ${limit.maxBytes} bytes for ${limit.what}; point to the right file, or raise ${limit.option} if it really is that big`
  return undefined
}

/**
 * Read a regular file of at most `limit.maxBytes`; anything else throws `load-failed` with
 * the figure. Opened non-blocking (a FIFO swapped in after a check cannot block), checked
 * on the open handle, and read no further than the limit even if the file grows meanwhile.
 *
 * @example
 * ```ts
 * const bytes = await readBounded('fn.wasm', { what: 'a module', maxBytes: DEFAULT_MAX_MODULE_BYTES, option: 'maxModuleBytes' })
 * ```
 */
export async function readBounded(path: string, limit: ReadLimit): Promise<Uint8Array> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const st = await fh.stat()
    const why = refusalOf(path, st, limit)
    if (why) throw new EdgelessError('load-failed', `${why}.`, { source: path, size: st.size, limit: limit.maxBytes })
    // One byte more than announced, to notice a file that grew past its stat.
    const buf = new Uint8Array(Math.min(st.size, limit.maxBytes) + 1)
    let got = 0
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, null)
      if (bytesRead === 0) break
      got += bytesRead
    }
    if (got > limit.maxBytes)
      throw new EdgelessError(
        'load-failed',
        `${path} grew past the limit of ${limit.maxBytes} bytes for ${limit.what} while it was read; raise ${limit.option} if it really is that big.`,
        { source: path, limit: limit.maxBytes },
      )
    if (got > st.size) {
      // It grew, but stays within the limit: read the rest up to the limit.
      const rest = await readRest(fh, limit.maxBytes + 1 - got)
      const all = new Uint8Array(got + rest.length)
      all.set(buf.subarray(0, got))
      all.set(rest, got)
      if (all.length > limit.maxBytes)
        throw new EdgelessError(
          'load-failed',
          `${path} grew past the limit of ${limit.maxBytes} bytes for ${limit.what} while it was read; raise ${limit.option} if it really is that big.`,
          { source: path, limit: limit.maxBytes },
        )
      return all
    }
    return buf.subarray(0, got)
  } finally {
    await fh.close()
  }
}

async function readRest(fh: Awaited<ReturnType<typeof open>>, max: number): Promise<Uint8Array> {
  const buf = new Uint8Array(max)
  let got = 0
  while (got < max) {
    const { bytesRead } = await fh.read(buf, got, max - got, null)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return buf.subarray(0, got)
}

/**
 * Fetch `url` and read its body incrementally, refusing it (`load-failed`, with the figure)
 * once it passes `limit.maxBytes` — before reading when the server declares a larger
 * `content-length`. For module sources given as `http(s):` or `data:` URLs.
 *
 * @example
 * ```ts
 * const bytes = await fetchBounded('https://example.com/fn.wasm', { what: 'a module', maxBytes: 1 << 28, option: 'maxModuleBytes' })
 * ```
 */
export async function fetchBounded(url: string, limit: ReadLimit): Promise<Uint8Array> {
  const res = await fetch(url)
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined)
    throw new EdgelessError('load-failed', `Fetching ${url} answered HTTP ${res.status}. Check the URL.`, { source: url, status: res.status })
  }
  return readCapped(
    res,
    limit.maxBytes,
    (seen) =>
      new EdgelessError(
        'load-failed',
        `${url} is ${seen}, over the limit of ${limit.maxBytes} bytes for ${limit.what}; point to the right file, or raise ${limit.option} if it really is that big.`,
        { source: url, limit: limit.maxBytes },
      ),
  )
}
