/**
 * `edgeless/adapters/file`: a state store of one file per state id in a folder, written
 * atomically (Node).
 * @packageDocumentation
 */
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { StateStore } from '../lib/state/store'

export type { StateStore } from '../lib/state/store'

/**
 * Options of {@link fileStore}.
 *
 * @example
 * ```ts
 * const options: FileStoreOptions = { dir: './state', fsync: true }
 * const store = fileStore(options)
 * ```
 */
export interface FileStoreOptions {
  /** The folder holding one file per state id. Created (with its parents) on the first write. */
  dir: string
  /**
   * Flush each file, and the folder entry naming it, to the disk before a write resolves
   * (default `true`). `false` skips both flushes: a crashed process still never leaves a torn
   * file, but a power loss may lose recent writes. Meant for tests and benchmarks.
   */
  fsync?: boolean
}

/** Every state file ends with this; temp files and foreign files do not. */
const EXT = '.state'
/** Longest file name produced, in bytes (names are ASCII), well under the common 255-byte limit with room for the temp suffix. */
const MAX_NAME = 200
/** Marks a hashed name. Never kept by the encoding (it becomes `%7E`), so plain and hashed names cannot collide. */
const HASH_MARK = '~'
/** Room left for the readable prefix of a hashed name: prefix + `~` + 64 hex + `.state`. */
const MAX_PREFIX = MAX_NAME - HASH_MARK.length - 64 - EXT.length
/** First bytes of every state file, followed by the encoded id and `\n`; then the value, verbatim. */
const MAGIC = 'EDGELESS-STATE/1 '
const MAGIC_BYTES = new TextEncoder().encode(MAGIC)
const NEWLINE = 0x0a
/** Temp files: `.<name>.<pid>.<counter>.tmp`. The leading dot hides them from `list()` and `get`. */
const TEMP = /^\..+\.(\d+)\.\d+\.tmp$/
const HEX = Array.from({ length: 256 }, (_, b) => '%' + b.toString(16).toUpperCase().padStart(2, '0'))

/** Shared by every store in the process, so two stores on one folder never pick the same temp name. */
let tempCounter = 0

/**
 * A Node state store keeping one file per state id in a folder. A write goes to a temp file
 * in the same folder, is flushed, then renamed over the old file, so a crash at any moment
 * leaves either the old value or the new one, never a torn file. Writes for one id land in
 * call order (the newest wins); `get` and `list` see every write issued before them.
 *
 * File names: the id's UTF-8 bytes, keeping `A-Z a-z 0-9 _ - .` and writing every other
 * byte as `%XX` (uppercase hex; a leading `.` too, so no name is `.`, `..` or hidden), plus
 * `.state`: `user/42` is stored as `user%2F42.state`. An id whose name would pass 200 bytes,
 * or the empty id, is stored as `<prefix>~<sha256 of the id>.state`. Every file starts with
 * one header line, `EDGELESS-STATE/1 <encoded id>\n`, followed by the value byte for byte, so
 * `list()` returns hashed ids exactly and `get` can check it opened the file it meant to.
 * Lone UTF-16 surrogates are encoded as their 3-byte (WTF-8) form, so every JS string maps
 * to its own name.
 *
 * Temp files a crashed process left behind are ignored, and removed (best effort) the first
 * time a store is used, when the process that made them is gone. One host per folder: the
 * store needs a file system that is case-sensitive (`A` and `a` are different ids) — on a
 * case-insensitive one (macOS, Windows defaults) such ids clash and `get` rejects.
 *
 * Node only (imports `node:fs`); `dir` is resolved to an absolute path when the store is made.
 *
 * @example
 * ```ts
 * import { fileStore } from 'edgeless/adapters/file'
 * const store = fileStore({ dir: './state' })
 * const rt = new Runtime({ stateStore: store })
 * // ... later, after the runtime has stopped:
 * await store.dispose?.() // waits for writes still in flight
 * ```
 */
export function fileStore(options: FileStoreOptions): StateStore & { readonly dir: string } {
  const dir = resolve(options.dir)
  const fsync = options.fsync ?? true
  // The tail of each id's write chain. Tails never reject (the caller's promise carries the
  // error), so one failed write does not stop the next one, and waiting on a tail is safe.
  const pending = new Map<string, Promise<void>>()
  let dirReady: Promise<void> | undefined
  let swept: Promise<void> | undefined

  function enqueue(id: string, op: () => Promise<void>): Promise<void> {
    const prev = pending.get(id)
    const run = prev ? prev.then(op) : op()
    const tail = run.then(noop, noop)
    pending.set(id, tail)
    // Drop the entry once idle, unless a newer write has chained onto it meanwhile.
    void tail.then(() => {
      if (pending.get(id) === tail) pending.delete(id)
    })
    return run
  }

  // Strays are cleaned up lazily, once, off the caller's path: nothing waits for it but dispose().
  function firstUse(): void {
    swept ??= sweepStrayTemps(dir).catch(noop)
  }

  // mkdir once; forget a failure so the next write tries again.
  function ensureDir(): Promise<void> {
    dirReady ??= makeDir(dir, fsync).catch((e: unknown) => {
      dirReady = undefined
      throw e
    })
    return dirReady
  }

  async function write(id: string, data: Uint8Array): Promise<void> {
    const name = fileName(id)
    const target = join(dir, name)
    const tmp = join(dir, `.${name}.${process.pid}.${++tempCounter}.tmp`)
    await ensureDir()
    let fh: FileHandle | undefined
    try {
      try {
        fh = await open(tmp, 'w')
      } catch (e) {
        // The folder was removed behind our back since we made it: make it again, once.
        if (!hasCode(e, 'ENOENT')) throw e
        dirReady = undefined
        await ensureDir()
        fh = await open(tmp, 'w')
      }
      const head = header(id)
      await writeAll(fh, head, 0)
      await writeAll(fh, data, head.length)
      // The data must be on the disk before the rename makes it the state, or a power loss
      // could leave the new name pointing at an empty file.
      if (fsync) await fh.sync()
      const h = fh
      fh = undefined
      // Close before renaming: some platforms (Windows) cannot rename an open file.
      await h.close()
      await rename(tmp, target)
    } catch (e) {
      if (fh) await fh.close().catch(noop)
      await unlink(tmp).catch(noop)
      throw e
    }
    // The rename lives in the folder: flush it so the new name survives a power loss.
    if (fsync) await syncDir(dir)
  }

  async function remove(id: string): Promise<void> {
    try {
      await unlink(join(dir, fileName(id)))
    } catch (e) {
      if (hasCode(e, 'ENOENT')) return
      throw e
    }
    if (fsync) await syncDir(dir)
  }

  return {
    dir,
    async get(id) {
      firstUse()
      // Read your writes: a write issued before this get lands first.
      await pending.get(id)
      const path = join(dir, fileName(id))
      let buf: Uint8Array
      try {
        buf = await readFile(path)
      } catch (e) {
        if (hasCode(e, 'ENOENT')) return undefined
        throw e
      }
      return parseStateFile(buf, id, path)
    },
    set(id, data) {
      firstUse()
      return enqueue(id, () => write(id, data))
    },
    delete(id) {
      firstUse()
      // Chained like a write, so set-then-delete (or the reverse) cannot land swapped.
      return enqueue(id, () => remove(id))
    },
    async list() {
      firstUse()
      await Promise.all(pending.values())
      let names: string[]
      try {
        names = await readdir(dir)
      } catch (e) {
        if (hasCode(e, 'ENOENT')) return []
        throw e
      }
      const ids: string[] = []
      for (const name of names) {
        if (name.startsWith('.') || !name.endsWith(EXT)) continue
        const stem = name.slice(0, -EXT.length)
        const id = stem.includes(HASH_MARK) ? await readHeaderId(join(dir, name)) : decodeId(stem)
        // Only names this store would produce: skips foreign files, and non-canonical
        // spellings (`%41` for `A`) that would list one id twice.
        if (id !== undefined && fileName(id) === name) ids.push(id)
      }
      return ids
    },
    async dispose() {
      // Writes may be chained while we wait; loop until none is left.
      while (pending.size > 0) await Promise.all(pending.values())
      await swept
    },
  }
}

function noop(): void {}

function hasCode(e: unknown, ...codes: string[]): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && codes.includes(code)
}

/** The file name for `id`: `<encoded id>.state`, or the hashed form when that is empty or too long. */
function fileName(id: string): string {
  const enc = encodeId(id)
  if (enc.length > 0 && enc.length + EXT.length <= MAX_NAME) return enc + EXT
  let prefix = enc.slice(0, MAX_PREFIX)
  // Do not cut a %XX in half: the prefix is only there for people reading `ls`, keep it decodable.
  const pct = prefix.lastIndexOf('%')
  if (pct >= 0 && pct > prefix.length - 3) prefix = prefix.slice(0, pct)
  return prefix + HASH_MARK + createHash('sha256').update(wtf8(id)).digest('hex') + EXT
}

function isKept(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2d || c === 0x2e
}

/** Percent-encode `id`, keeping `[A-Za-z0-9_.-]` except a leading `.`. */
function encodeId(id: string): string {
  let out = ''
  for (const b of wtf8(id)) out += isKept(b) && !(b === 0x2e && out === '') ? String.fromCharCode(b) : HEX[b]
  return out
}

/** `id` as UTF-8, with lone surrogates as 3-byte sequences (WTF-8) rather than U+FFFD, so distinct strings stay distinct. */
function wtf8(id: string): Uint8Array {
  const out: number[] = []
  // for..of walks code points: a valid pair comes out as one, a lone surrogate alone.
  for (const ch of id) {
    const cp = ch.codePointAt(0) ?? 0
    if (cp < 0x80) out.push(cp)
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f))
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f))
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f))
  }
  return Uint8Array.from(out)
}

/**
 * The id an encoded name stands for, or `undefined` when it is not one. Lenient about
 * spelling; callers check `encodeId(decoded) === name`, which rejects the non-canonical ones.
 */
function decodeId(enc: string): string | undefined {
  const bytes: number[] = []
  for (let i = 0; i < enc.length; i++) {
    const c = enc.charCodeAt(i)
    if (c === 0x25) {
      const hex = enc.slice(i + 1, i + 3)
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined
      bytes.push(Number.parseInt(hex, 16))
      i += 2
    } else if (isKept(c)) {
      bytes.push(c)
    } else {
      return undefined
    }
  }
  // Decode WTF-8 by hand: TextDecoder would turn an encoded lone surrogate into U+FFFD.
  let out = ''
  for (let i = 0; i < bytes.length; ) {
    const b0 = bytes[i] ?? 0
    const n = b0 < 0x80 ? 1 : b0 >= 0xc2 && b0 < 0xe0 ? 2 : b0 >= 0xe0 && b0 < 0xf0 ? 3 : b0 >= 0xf0 && b0 < 0xf5 ? 4 : 0
    if (n === 0 || i + n > bytes.length) return undefined
    let cp = n === 1 ? b0 : b0 & (0xff >> (n + 1))
    for (let k = 1; k < n; k++) {
      const b = bytes[i + k] ?? 0
      if ((b & 0xc0) !== 0x80) return undefined
      cp = (cp << 6) | (b & 0x3f)
    }
    if (cp > 0x10ffff) return undefined
    out += String.fromCodePoint(cp)
    i += n
  }
  return out
}

/** `EDGELESS-STATE/1 <encoded id>\n`, ASCII. */
function header(id: string): Uint8Array {
  return new TextEncoder().encode(MAGIC + encodeId(id) + '\n')
}

/** The id named by a file's header line, or `undefined` when the header is missing, not canonical, or not one line. */
function headerId(bytes: Uint8Array, end: number): string | undefined {
  for (let i = 0; i < MAGIC_BYTES.length; i++) if (bytes[i] !== MAGIC_BYTES[i]) return undefined
  let enc = ''
  for (let i = MAGIC_BYTES.length; i < end; i++) enc += String.fromCharCode(bytes[i] ?? 0)
  const id = decodeId(enc)
  return id !== undefined && encodeId(id) === enc ? id : undefined
}

/** The value stored in a file's contents, after checking its header names `id`. */
function parseStateFile(buf: Uint8Array, id: string, path: string): Uint8Array {
  const nl = buf.indexOf(NEWLINE, MAGIC_BYTES.length)
  const found = nl < 0 ? undefined : headerId(buf, nl)
  if (found === undefined) throw new Error(`${path} is not an edgeless state file (no valid "${MAGIC.trim()}" header line).`)
  if (found !== id) {
    throw new Error(
      `${path} holds state ${JSON.stringify(found)}, not ${JSON.stringify(id)}. Is the file system case-insensitive? The file store needs a case-sensitive one.`,
    )
  }
  // readFile gives a buffer of its own for a file of known size; copy only if it is a slice of
  // a shared pool, so the caller can never see or change bytes that are not its own.
  const owned = buf.byteOffset === 0 && buf.buffer.byteLength === buf.length
  return owned ? new Uint8Array(buf.buffer, nl + 1, buf.length - nl - 1) : new Uint8Array(buf.subarray(nl + 1))
}

/** The id in the header of the file at `path`, reading only up to the end of the header. */
async function readHeaderId(path: string): Promise<string | undefined> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (e) {
    // Deleted between readdir and open: it is simply not there any more.
    if (hasCode(e, 'ENOENT')) return undefined
    throw e
  }
  try {
    let bytes = new Uint8Array(0)
    for (;;) {
      const chunk = new Uint8Array(4096)
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, bytes.length)
      if (bytesRead === 0) return undefined
      const next = new Uint8Array(bytes.length + bytesRead)
      next.set(bytes)
      next.set(chunk.subarray(0, bytesRead), bytes.length)
      const nl = next.indexOf(NEWLINE, bytes.length)
      bytes = next
      if (nl >= 0) return headerId(bytes, nl)
    }
  } finally {
    await fh.close()
  }
}

/** Write all of `bytes` at `position`: a single write() may write less than asked. */
async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, position + off)
    if (bytesWritten <= 0) throw new Error(`write() made no progress on a state file (${bytes.length - off} bytes left).`)
    off += bytesWritten
  }
}

/** fsync a folder, so the names in it (a rename, an unlink, a new subfolder) survive a power loss. */
async function syncDir(path: string): Promise<void> {
  let fh: FileHandle | undefined
  try {
    fh = await open(path, 'r')
    await fh.sync()
  } catch (e) {
    // Some platforms cannot open or fsync a folder (Windows: EISDIR/EPERM, some file systems: EINVAL).
    if (!hasCode(e, 'EISDIR', 'EPERM', 'EINVAL')) throw e
  } finally {
    await fh?.close().catch(noop)
  }
}

/** mkdir -p `dir`; with `fsync`, flush the parent of each folder it created so they survive a power loss. */
async function makeDir(dir: string, fsync: boolean): Promise<void> {
  const first = await mkdir(dir, { recursive: true })
  if (!fsync || first === undefined) return
  for (let p = dir; ; p = dirname(p)) {
    await syncDir(dirname(p))
    if (p === first || dirname(p) === p) break
  }
}

/**
 * Remove temp files whose writer is gone (a crash mid-write). Best effort: errors are ignored.
 * A temp file is left alone while a process with its pid runs, unless that pid is ours and
 * the file predates this process: then it is from an earlier process that had our pid (the
 * usual case in a container, where the app is pid 1 on every restart).
 */
async function sweepStrayTemps(dir: string): Promise<void> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  const startedMs = Date.now() - process.uptime() * 1000
  for (const name of names) {
    const pid = Number(TEMP.exec(name)?.[1])
    if (!Number.isSafeInteger(pid)) continue
    const path = join(dir, name)
    try {
      // Another store of this process may be writing it right now.
      if (pid === process.pid ? (await stat(path)).mtimeMs >= startedMs : isAlive(pid)) continue
      await unlink(path)
    } catch {
      // Gone already, or not ours to remove: leave it.
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return hasCode(e, 'EPERM')
  }
}
