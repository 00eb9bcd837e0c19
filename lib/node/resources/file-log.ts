/**
 * The `file-log` resource (Node): appends every message it receives to a file, one line
 * per message.
 *
 * Configuration:
 * - `filename` (required): the file to append to. A relative path resolves against the
 *   workflow file's folder (`baseDir`), or the working directory when there is none.
 *   Missing parent folders are created. The file must stay inside that folder: a workflow
 *   is input, and `"../../etc/cron.d/x"` or `"/home/me/.bashrc"` must not become a write
 *   anywhere the process can reach. Absolute paths and paths that climb out with `..` are
 *   refused at validation. To write elsewhere, give the runtime a log root (Runtime option
 *   `logRoot`, CLI `--log-root <dir>`, or {@link fileLog}`({ logRoot })`): relative names
 *   then resolve against it, and absolute ones must lie inside it. (Symbolic links inside
 *   the folder are followed: whoever can create them already writes there.)
 * - `add-timestamp`: prefixes each line with the UTC time the line was written, as
 *   upstream's chrono `Utc::now().to_rfc3339()` prints it: nanoseconds (trailing zero
 *   groups of three dropped) and `+00:00` (`2026-11-28T14:30:00.123456789+00:00`).
 * - `add-source-id`: prefixes each line with the sender's instance id as upstream's
 *   `InstanceId` prints it: `InstanceId(node_id: <uuid>, function_id: <uuid>)`.
 *
 * As upstream (`resources/file_log.rs`, which asks `contains_key`), an option is on when
 * its key is present, whatever the value: `"add-timestamp": "false"` adds timestamps. A
 * value other than `"true"` is therefore a warning when the resource is created, so the
 * surprise is visible; remove the key to turn the option off.
 *
 * Line format (fields separated by one space, absent fields leave no gap):
 * ```
 * [<timestamp> ][<source-id> ]<text>\n
 * 2026-11-28T14:30:00.123Z 1b4e28ba-2fa1-11d2-883f-0016d3cca427/9f0c…-… hello
 * ```
 * `<text>` is the payload decoded as UTF-8 (invalid bytes become U+FFFD), written as is:
 * a payload containing newlines spans several lines, as upstream's `writeln!` does.
 *
 * Delivery: a cast is queued and written in order with its neighbours (consecutive
 * lines go out in one write); a call answers NoReply only once its line — and every line
 * received before it — is written to the file. A failed write is a warning (and Err for
 * a call). Stopping the resource writes what is queued, then closes the file.
 *
 * @example
 * ```json
 * { "name": "log", "class_type": "file-log", "output_mapping": {},
 *   "configurations": { "filename": "out/pings.log", "add-timestamp": "true" } }
 * ```
 * ```ts
 * const log = await rt.spawn({ name: 'log', fn: await fileLogResource.create({ name: 'log', workflowId, config: { filename: 'out.log' }, warn }) })
 * ```
 * @packageDocumentation
 */
import type { FileHandle } from 'node:fs/promises'
import { mkdir, open } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { err, reply } from '../../call-result'
import { EdgelessError } from '../../errors'
import type { InstanceId } from '../../ids'
import type { EdgeFunction } from '../../js-function'
import { utf8 } from '../../payload'
import type { ResourceClass } from '../../workflow/resource'

/** Casts stop being accepted without waiting once this many characters are queued. */
const HIGH_WATER_CHARS = 1 << 20

/** Options upstream turns on by the key's presence alone. */
const PRESENCE_KEYS = ['add-timestamp', 'add-source-id'] as const

/**
 * A time as chrono's `DateTime<Utc>::to_rfc3339()` writes it (upstream's file-log
 * timestamps): `YYYY-MM-DDTHH:MM:SS`, then the fraction with 0, 3, 6 or 9 digits (the
 * fewest that show every non-zero digit), then `+00:00`.
 *
 * @param epochNanos nanoseconds since 1970-01-01T00:00:00Z.
 * @example
 * ```ts
 * chronoRfc3339(1_700_000_000_123_000_000n) // '2023-11-14T22:13:20.123+00:00'
 * chronoRfc3339(1_700_000_000_000_000_001n) // '2023-11-14T22:13:20.000000001+00:00'
 * ```
 */
export function chronoRfc3339(epochNanos: bigint): string {
  const seconds = epochNanos / 1_000_000_000n
  const nanos = Number(epochNanos % 1_000_000_000n)
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19)
  const digits = String(nanos).padStart(9, '0')
  const fraction = nanos === 0 ? '' : nanos % 1_000_000 === 0 ? `.${digits.slice(0, 3)}` : nanos % 1000 === 0 ? `.${digits.slice(0, 6)}` : `.${digits}`
  return `${whole}${fraction}+00:00`
}

/** Wall-clock nanoseconds: Date's milliseconds give the epoch, hrtime the digits below. */
let anchorWall = 0n
let anchorHr = 0n
function nowNanos(): bigint {
  const hr = process.hrtime.bigint()
  const wall = BigInt(Date.now()) * 1_000_000n
  let t = anchorWall + (hr - anchorHr)
  // Re-anchored at first use and whenever the wall clock moved away from the monotonic one
  // (an NTP step, a suspend): a timestamp never strays more than a couple of ms from Date.
  if (anchorHr === 0n || t < wall - 1_000_000n || t > wall + 2_000_000n) {
    anchorWall = wall
    anchorHr = hr
    t = wall
  }
  return t
}

/** The sender as upstream's `impl Display for InstanceId` prints it. */
function upstreamInstanceId(id: InstanceId): string {
  return `InstanceId(node_id: ${id.node}, function_id: ${id.function})`
}

/**
 * Options of a {@link fileLog} resource class.
 *
 * @example
 * ```ts
 * fileLog({ logRoot: '/var/log/edgeless' })
 * ```
 */
export interface FileLogOptions {
  /**
   * The folder every log file must lie in. Relative filenames resolve against it. Default:
   * none, and each workflow's files must lie in the workflow file's own folder (the working
   * directory for a workflow given as an object).
   */
  logRoot?: string
}

/** `path` is strictly inside `root` (both absolute). */
function inside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)
}

/** A value echoed in a message, cut to a readable size (a hostile workflow may hold megabytes). */
function shown(v: string): string {
  return v.length <= 200 ? JSON.stringify(v) : `${JSON.stringify(v.slice(0, 200))}… (${v.length} characters)`
}

/** Why `filename` may not be written, or undefined when it may (see the module documentation). */
function escapes(filename: string, logRoot: string | undefined, baseDir: string | undefined): string | undefined {
  if (logRoot !== undefined) {
    const root = resolve(logRoot)
    if (inside(root, resolve(root, filename))) return undefined
    return `${shown(filename)} is outside the log root ${root}; give a path inside it (relative paths resolve against it)`
  }
  // Absolute paths are refused even when they happen to point inside the folder: a
  // workflow folder whose files name themselves relatively works wherever it is copied.
  if (isAbsolute(filename)) {
    return `${shown(filename)} is an absolute path; file-log writes only inside the workflow's folder: give a path relative to it, or start the runtime with a log root that contains the file (CLI --log-root <dir>, Runtime option logRoot)`
  }
  const root = resolve(baseDir ?? process.cwd())
  if (inside(root, resolve(root, filename))) return undefined
  return `${shown(filename)} climbs out of the workflow's folder with ".."; file-log writes only inside it: give a path relative to it without "..", or start the runtime with a log root that contains the file (CLI --log-root <dir>, Runtime option logRoot)`
}

function checkConfig(config: Readonly<Record<string, string>>, logRoot?: string): Array<{ field: string; message: string }> {
  const problems: Array<{ field: string; message: string }> = []
  // A missing `filename` is reported by the runner from `required`; only an empty one here.
  const filename = config['filename']
  if (filename !== undefined && filename.trim() === '') {
    problems.push({ field: 'filename', message: 'must name the file to append to (relative paths resolve against the workflow file\'s folder), got ""' })
  } else if (filename !== undefined) {
    // Validation does not get the workflow's folder, but whether a relative path climbs out
    // does not depend on it (any stand-in folder answers the same). create() checks again.
    const why = escapes(filename, logRoot, logRoot === undefined ? '/folder' : undefined)
    if (why) problems.push({ field: 'filename', message: why })
  }
  return problems
}

/**
 * Writes lines to a file in the order they were given, batching the ones that queue up
 * while a write is in flight. Each `append` resolves once its line is written.
 */
class OrderedAppender {
  private batch: string[] = []
  private waiters: Array<(e?: unknown) => void> = []
  private queuedChars = 0
  private running: Promise<void> | null = null

  constructor(private readonly fh: FileHandle) {}

  /** Characters queued but not yet written. */
  get backlog(): number {
    return this.queuedChars
  }

  append(line: string): Promise<void> {
    return new Promise((res, rej) => {
      this.batch.push(line)
      this.queuedChars += line.length
      this.waiters.push((e) => (e === undefined ? res() : rej(e)))
      this.running ??= this.run()
    })
  }

  /** Resolves when everything queued so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.running) await this.running
  }

  private async run(): Promise<void> {
    while (this.batch.length > 0) {
      const lines = this.batch
      const waiters = this.waiters
      this.batch = []
      this.waiters = []
      const data = lines.join('')
      let error: unknown
      try {
        // appendFile loops until every byte is written (a single write() may be partial).
        await this.fh.appendFile(data, 'utf8')
      } catch (e) {
        error = e ?? new Error('write failed')
      }
      this.queuedChars -= data.length
      for (const w of waiters) w(error)
    }
    this.running = null
  }
}

/**
 * A `file-log` resource class whose files must lie in `logRoot` (see {@link FileLogOptions}).
 * The Node {@link Runtime} registers `fileLog({ logRoot })` from its `logRoot` option.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ resources: [fileLog({ logRoot: '/var/log/edgeless' })] })
 * ```
 */
export function fileLog(options: FileLogOptions = {}): ResourceClass {
  const logRoot = options.logRoot
  return {
    classType: 'file-log',
    description: "Appends each message it receives to a file as one line, optionally prefixed by a timestamp and the sender's instance id.",
    required: ['filename'],
    validate: (config) => checkConfig(config, logRoot),
    create(init): EdgeFunction {
      const problem =
        init.config['filename'] === undefined
          ? { field: 'filename', message: 'is required: set it to the file to append to' }
          : checkConfig(init.config, logRoot)[0]
      if (problem)
        throw new EdgelessError('resource-failed', `file-log "${init.name}": configurations.${problem.field} ${problem.message}.`, {
          name: init.name,
          field: problem.field,
        })
      const outside = escapes(init.config['filename']!, logRoot, init.baseDir)
      if (outside)
        throw new EdgelessError('resource-failed', `file-log "${init.name}": configurations.filename ${outside}.`, { name: init.name, field: 'filename' })
      const path = resolve(logRoot ?? init.baseDir ?? process.cwd(), init.config['filename']!)
      const who = `file-log "${init.name}"`
      // Upstream: `configuration.contains_key(...)`; the value is not read.
      const addTimestamp = init.config['add-timestamp'] !== undefined
      const addSourceId = init.config['add-source-id'] !== undefined
      for (const k of PRESENCE_KEYS) {
        const v = init.config[k]
        if (v !== undefined && v.toLowerCase() !== 'true') {
          init.warn(
            `${who}: configurations.${k} is ${JSON.stringify(v)}, but as upstream the option is on whenever the key is present; remove the key to turn it off.`,
            { name: init.name, field: k },
          )
        }
      }
      let fh: FileHandle | undefined
      let out: OrderedAppender | undefined

      const line = (src: InstanceId, msg: Uint8Array): string => {
        let s = ''
        if (addTimestamp) s += `${chronoRfc3339(nowNanos())} `
        if (addSourceId) s += `${upstreamInstanceId(src)} `
        return `${s}${utf8(msg)}\n`
      }
      const writeFailed = (e: unknown): string => {
        const message = `${who}: writing to ${path} failed: ${(e as Error)?.message ?? String(e)}`
        init.warn(message, { path })
        return message
      }

      return {
        async handleInit() {
          // The file is opened here, not in create, so that the instance that owns it is the
          // one whose handleStop closes it (a restarted instance reopens it).
          try {
            await mkdir(dirname(path), { recursive: true })
            fh = await open(path, 'a')
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code
            throw new EdgelessError(
              'resource-failed',
              `${who}: cannot open ${path} for appending (${code ?? (e as Error).message}). Make sure its folder exists or can be created and is writable, or set configurations.filename to another path.`,
              { name: init.name, path, code },
              { cause: e },
            )
          }
          out = new OrderedAppender(fh)
        },

        async handleCast(src, msg) {
          if (!out) return
          const written = out.append(line(src, msg))
          written.catch(writeFailed)
          // Backpressure: a sender much faster than the disk waits instead of growing the queue.
          if (out.backlog > HIGH_WATER_CHARS) await written.catch(() => undefined)
        },

        async handleCall(src, msg) {
          if (!out) return err(`${who} is not open`)
          try {
            await out.append(line(src, msg))
          } catch (e) {
            return err(writeFailed(e))
          }
          // Upstream answers a call with Reply(""): callers that wait for a reply get one.
          return reply(new Uint8Array(0))
        },

        async handleStop() {
          const f = fh
          const o = out
          fh = undefined
          out = undefined
          if (o) await o.drain()
          if (f) await f.close()
        },
      }
    },
  }
}

/**
 * The `file-log` resource class with the default confinement: each workflow's files lie in
 * its own folder. See the module documentation for the line format.
 *
 * @example
 * ```ts
 * rt.registerResource(fileLogResource)
 * ```
 */
export const fileLogResource: ResourceClass = fileLog()
