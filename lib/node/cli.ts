/**
 * The `edgeless` command: run or validate an upstream EDGELESS workflow file on this
 * machine. User mistakes (a bad file, a bad workflow, a port in use) print one clear
 * paragraph and exit non-zero; a crash inside a function is a log line and the run goes on.
 * @packageDocumentation
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
// build.ts imports the AssemblyScript compiler itself only when a build runs.
import { buildAssemblyScript } from './build'
import { fileStore } from '../../adapters/file'
import { isEdgelessError } from '../errors'
import type { LogEvent } from '../events'
import { onAsyncifyMiss } from '../wasm/asyncify'
import { formatProblem } from '../workflow/spec'
import { defaultCacheDir, Runtime, type NodeRuntimeOptions, type WorkflowHandle } from './index'
import { startInspector, type Inspector } from './inspector/server'

const USAGE = `Usage:
  edgeless run <workflow.json> [--duration <ms>] [--state-dir <dir>] [--http-port <port>] [--http-host <addr>] [--log-level <level>] [--log-root <dir>] [--allow-host <host>]... [--allow-private] [--max-response-bytes <n>] [--max-module-bytes <n>] [--max-workflow-bytes <n>] [--fail-on-drop] [--inspect [port]]
  edgeless validate <workflow.json> [--log-root <dir>] [--max-module-bytes <n>] [--max-workflow-bytes <n>]
  edgeless build <function.ts> -o <function.wasm> [--debug] [--no-optimize]
  edgeless <command> --help | edgeless --help | --version

run       starts the workflow and runs it until Ctrl-C (SIGINT), SIGTERM or --duration,
          then stops it gracefully (every stop handler runs, pending state is written).
          Exit code: 0 after --duration, 130 after Ctrl-C, 143 after SIGTERM, 1 when the
          workflow could not run or its supervisor gave up, 2 for a wrong command line,
          3 with --fail-on-drop when messages were dropped.
          Function logs go to stdout, one line each: time, level, function, log target, text.
          --state-dir <dir>   keep function state as files in <dir> (a second run resumes)
          --http-port <port>  port of http-ingress resources without a "port" (default 7008)
          --http-host <addr>  address they listen on (default 127.0.0.1)
          --log-level <l>     error | warn | info | debug | trace (default info)
          --allow-host <h>    http-egress may reach host <h> only (repeatable; "*.example.com" for
                              subdomains). Default: any public host
          --allow-private     let http-egress reach loopback, link-local and private addresses
                              (refused by default; a host named exactly by --allow-host may be one)
          --max-response-bytes <n>  cut http-egress responses larger than <n> (default 16777216)
          --fail-on-drop      exit 3 if any message was dropped (dead letters, full mailboxes);
                              drops are always summed up on stderr, at most every 5 s and at exit
          --max-module-bytes <n>    largest .wasm file read (default 268435456, 256 MiB)
          --max-workflow-bytes <n>  largest workflow file read (default 16777216, 16 MiB);
                              only regular files are read (not devices, FIFOs, sockets)
          --log-root <dir>    file-log resources write under <dir> (default: the workflow's folder;
                              a file-log filename outside it is refused)
          --inspect [port]    serve the live inspector on 127.0.0.1 (default port 7007)
validate  checks the workflow (names, mappings, code, resources) and prints every problem.
build     compiles an AssemblyScript function (edgeless/assembly) to an EDGELESS module
          (needs the assemblyscript package: npm install -D assemblyscript).`

/** Exit codes: 0 ok, 1 the workflow could not run, 2 the command line is wrong, 3 messages were dropped (--fail-on-drop). */
class UsageError extends Error {
  constructor(
    message: string,
    readonly cmd?: keyof typeof COMMANDS,
  ) {
    super(message)
  }
}

const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * Run the CLI with `argv` (without `node` and the script). Resolves to the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['validate', 'workflow.json'])
 * ```
 */
export async function main(
  argv: string[],
  io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) },
): Promise<number> {
  try {
    const [cmd, ...rest] = argv
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      io.out(USAGE)
      return cmd === undefined ? 2 : 0
    }
    if (cmd === '--version' || cmd === '-v') {
      io.out(VERSION)
      return 0
    }
    if (cmd in COMMANDS && rest.some((a) => a === '--help' || a === '-h')) {
      io.out(commandUsage(cmd as keyof typeof COMMANDS))
      return 0
    }
    if (cmd === 'validate') return await validate(rest, io)
    if (cmd === 'build') return await build(rest, io)
    if (cmd === 'run') return await run(rest, io)
    const near = closest(cmd, Object.keys(COMMANDS))
    throw new UsageError(`unknown command "${cmd}".${near ? ` Did you mean "${near}"?` : ''}`)
  } catch (e) {
    if (e instanceof UsageError) {
      // The usage of the command at hand (all of it for a command-less mistake).
      io.err(`edgeless: ${e.message}\n\n${e.cmd ? commandUsage(e.cmd) : USAGE}`)
      return 2
    }
    if (isEdgelessError(e)) {
      io.err(`edgeless: ${e.message}`)
      return 1
    }
    io.err(`edgeless: unexpected failure: ${(e as Error)?.stack ?? e}`)
    return 1
  }
}

declare const __EDGELESS_VERSION__: string | undefined
const VERSION = typeof __EDGELESS_VERSION__ === 'string' ? __EDGELESS_VERSION__ : '0.0.0-dev'

/** The commands, each with the part of {@link USAGE} that is its own (for `edgeless <command> --help`). */
const COMMANDS = { run: 'run', validate: 'validate', build: 'build' } as const

/** The usage of one command: its synopsis line and its paragraph of USAGE. */
function commandUsage(cmd: keyof typeof COMMANDS): string {
  const lines = USAGE.split('\n')
  const synopsis = lines.find((l) => l.trimStart().startsWith(`edgeless ${cmd} `)) ?? ''
  const start = lines.findIndex((l) => l.startsWith(cmd.padEnd(10)))
  let end = start + 1
  while (end < lines.length && (lines[end]!.startsWith(' ') || lines[end] === '')) end++
  return `Usage:\n${synopsis}\n\n${lines.slice(start, end).join('\n')}`
}

/** The known word nearest to `word` (edit distance at most 2, or a prefix of 3+ letters), if any. */
function closest(word: string, known: readonly string[]): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: b.length + 1 }, (_, j) => j)
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0]!
      d[0] = i
      for (let j = 1; j <= b.length; j++) {
        const cur = d[j]!
        d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
        prev = cur
      }
    }
    return d[b.length]!
  }
  let best: string | undefined
  let bestD = 3
  for (const k of known) {
    const dd = word.length >= 3 && k.startsWith(word) ? 1 : dist(word, k)
    if (dd < bestD) {
      best = k
      bestD = dd
    }
  }
  return best
}

function parse(args: string[], options: ParseArgsConfig['options'], cmd: keyof typeof COMMANDS) {
  try {
    return parseArgs({ args, options: options ?? {}, allowPositionals: true, strict: true })
  } catch (e) {
    const raw = (e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')
    // Node's own text names the flag; add the nearest known one and where to read them all.
    const flag = /Unknown option '(--?[^']+)'/.exec(raw)?.[1]
    if (flag !== undefined) {
      const near = closest(flag.replace(/^--?/, '').replace(/=.*$/, ''), [...Object.keys(options ?? {}), ...(cmd === 'run' ? ['inspect'] : [])])
      throw new UsageError(`"${cmd}" has no option ${flag}.${near ? ` Did you mean --${near}?` : ''}`, cmd)
    }
    throw new UsageError(`${raw.replace(/\.$/, '')}.`, cmd)
  }
}

async function validate(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { positionals, values } = parse(args, { 'log-root': { type: 'string' }, ...SIZE_OPTIONS }, 'validate')
  const file = one(positionals, 'validate')
  const logRoot = values['log-root'] as string | undefined
  const rt = new Runtime({ consoleLog: false, ...(logRoot !== undefined ? { logRoot } : {}), ...sizeOptions(values) })
  const problems = await rt.validateWorkflow(file)
  await rt.shutdown()
  if (problems.length === 0) {
    io.out(`${file}: ok`)
    return 0
  }
  io.err(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:`)
  for (const p of problems) io.err(`  - ${formatProblem({ ...p, file: undefined } as typeof p)}`)
  return 1
}

function one(positionals: string[], cmd: keyof typeof COMMANDS): string {
  if (positionals.length !== 1)
    throw new UsageError(
      `"${cmd}" takes exactly one ${cmd === 'build' ? 'source file' : 'workflow file'}, got ${positionals.length ? positionals.join(' ') : 'none'}.`,
      cmd,
    )
  return positionals[0]!
}

function intOption(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${String(v)}".`)
  return n
}

/** Flags of both run and validate: how big a file named by the workflow (or the workflow) may be. */
const SIZE_OPTIONS = { 'max-module-bytes': { type: 'string' }, 'max-workflow-bytes': { type: 'string' } } as const

function sizeOptions(values: Record<string, unknown>): { maxModuleBytes?: number; maxWorkflowBytes?: number } {
  const m = intOption(values['max-module-bytes'], 'max-module-bytes', 1, Number.MAX_SAFE_INTEGER)
  const w = intOption(values['max-workflow-bytes'], 'max-workflow-bytes', 1, Number.MAX_SAFE_INTEGER)
  return { ...(m !== undefined ? { maxModuleBytes: m } : {}), ...(w !== undefined ? { maxWorkflowBytes: w } : {}) }
}

/** Default port of `--inspect` given without one. */
const INSPECT_PORT = 7007

/**
 * Take `--inspect`, `--inspect <port>` and `--inspect=<port>` out of `args` (parseArgs has no
 * option whose value is optional). Returns the remaining args and the port text, if given.
 */
function takeInspect(args: string[]): { rest: string[]; inspect: string | undefined; afterInspect: string | undefined } {
  const rest: string[] = []
  let inspect: string | undefined
  let afterInspect: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--') {
      rest.push(...args.slice(i))
      break
    }
    if (a === '--inspect') {
      const next = args[i + 1]
      if (next !== undefined && /^\d+$/.test(next)) {
        inspect = next
        i++
      } else {
        inspect = String(INSPECT_PORT)
        // `--inspect wf.json` is fine (the default port, then the file); remembered in case
        // the word was meant as a port (`--inspect abc`), to say so.
        if (next !== undefined && !next.startsWith('-')) afterInspect = next
      }
    } else if (a.startsWith('--inspect=')) {
      inspect = a.slice('--inspect='.length)
    } else {
      rest.push(a)
    }
  }
  return { rest, inspect, afterInspect }
}

async function run(argv: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { rest: args, inspect, afterInspect } = takeInspect(argv)
  const inspectPort = inspect === undefined ? undefined : intOption(inspect, 'inspect', 0, 65535)
  const { positionals, values } = parse(
    args,
    {
      duration: { type: 'string' },
      'state-dir': { type: 'string' },
      'http-port': { type: 'string' },
      'http-host': { type: 'string' },
      'log-level': { type: 'string' },
      'log-root': { type: 'string' },
      'allow-host': { type: 'string', multiple: true },
      'allow-private': { type: 'boolean' },
      'max-response-bytes': { type: 'string' },
      'fail-on-drop': { type: 'boolean' },
      ...SIZE_OPTIONS,
    },
    'run',
  )
  if (positionals.length > 1 && afterInspect !== undefined && positionals.includes(afterInspect)) {
    throw new UsageError(
      `--inspect takes a port number, and "${afterInspect}" is not one (nor a second workflow file: run takes one). Write --inspect <port>, or --inspect alone for port ${INSPECT_PORT}.`,
      'run',
    )
  }
  const file = one(positionals, 'run')
  const allowHosts = values['allow-host'] as string[] | undefined
  const maxResponseBytes = intOption(values['max-response-bytes'], 'max-response-bytes', 0, Number.MAX_SAFE_INTEGER)
  const duration = intOption(values['duration'], 'duration', 1, 2 ** 31 - 1)
  const httpPort = intOption(values['http-port'], 'http-port', 0, 65535) ?? 7008
  const levelName = (values['log-level'] as string | undefined) ?? 'info'
  const rank = LEVELS.indexOf(levelName as (typeof LEVELS)[number]) + 1
  if (rank === 0) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, got "${levelName}".`)
  const stateDir = values['state-dir'] as string | undefined

  const logRoot = values['log-root'] as string | undefined
  const options: NodeRuntimeOptions = {
    consoleLog: false,
    ...(logRoot !== undefined ? { logRoot } : {}),
    ...sizeOptions(values),
    egress: {
      ...(allowHosts !== undefined ? { allowHosts } : {}),
      ...(values['allow-private'] === true ? { allowPrivate: true } : {}),
      ...(maxResponseBytes !== undefined ? { maxResponseBytes } : {}),
    },
    resourceConfig: { 'http-ingress': { port: String(httpPort), address: (values['http-host'] as string | undefined) ?? '127.0.0.1' } },
    ...(stateDir !== undefined ? { stateStore: fileStore({ dir: stateDir }) } : {}),
  }
  const rt = new Runtime(options)
  const now = () => new Date().toISOString()
  const line = (level: string, who: string, text: string) => io.out(`${now()} ${level.toUpperCase().padEnd(5)} ${who}: ${text}`)
  // Upstream's telemetry prints `<target>: <message>`; the target follows the function's name
  // (left out when it is the name itself, a JS function's default target).
  rt.on('log', (e: LogEvent) => {
    if (e.level <= rank) line(e.levelName, e.target && e.target !== e.name ? `${e.name} ${e.target}` : e.name, e.text)
  })
  // A crash is reported like a log line; the rest of the workflow keeps running.
  rt.on('crash', (e) => line('error', e.name, `CRASH in handle_${e.handler}: ${e.error.message}`))
  rt.on('warning', (e) => {
    if (rank >= 2) line('warn', e.name, e.message)
  })
  rt.on('call-timeout', (e) => {
    if (rank >= 2) line('warn', e.caller ?? 'host', e.error.message)
  })
  rt.on('call-cycle', (e) => {
    if (rank >= 2) line('warn', e.caller ?? 'host', e.error.message)
  })
  rt.on('state-sync-failed', (e) => line('warn', e.name, e.error.message))
  rt.on('state-lost', (e) => line('error', e.name, e.error.message))
  rt.on('state-conflict', (e) => line('error', e.name, e.error.message))
  rt.on('restart', (e) => {
    if (rank >= 3) line('info', e.name, `restarted (restart #${e.restarts})`)
  })
  rt.on('escalation', (e) => line('error', e.name, `ESCALATION: ${e.reason.message}`))
  // Every message the runtime could not deliver is a dead letter (a full mailbox, a stopped
  // or failed receiver, ...). One line each would flood the terminal exactly when it
  // matters, so they are counted and summed up: at most every DROP_REPORT_MS while they
  // occur, and once at exit.
  const drops = new DropCounter()
  rt.on('dead-letter', (e) => drops.add(e.reason.code, e.name))
  const dropTimer = setInterval(() => {
    const recent = drops.sinceLastReport()
    if (recent) io.err(`[edgeless] ${recent} in the last ${DROP_REPORT_MS / 1000} s`)
  }, DROP_REPORT_MS)
  dropTimer.unref()

  // Started before the workflow, so it sees the instantiation and init of every function.
  let inspector: Inspector | undefined
  if (inspectPort !== undefined) {
    try {
      inspector = await startInspector(rt, { port: inspectPort, portSetting: 'cli' })
    } catch (e) {
      await rt.shutdown().catch(() => {})
      throw e
    }
    io.err(`edgeless: inspector at ${inspector.url}`)
  }
  // A guest that makes blocking calls and is not in the cache takes seconds to prepare
  // (binaryen's asyncify): a line says so, so that a silent first start is not taken for a hang.
  const cacheDir = defaultCacheDir()
  const stopNotices = onAsyncifyMiss((label) =>
    io.err(
      `edgeless: preparing ${label} for blocking calls (asyncify, a few seconds; ${cacheDir ? `cached in ${cacheDir} afterwards` : 'not cached: EDGELESS_CACHE_DIR=off'})`,
    ),
  )
  let wf: WorkflowHandle
  try {
    wf = await rt.startWorkflow(file)
  } catch (e) {
    await inspector?.close()
    await rt.shutdown().catch(() => {})
    throw e
  } finally {
    stopNotices()
  }
  const fns = wf.instances()
  io.err(
    `edgeless: workflow "${wf.name}" (${wf.id}) started: ${fns.map((i) => `${i.name}@${i.id.function.slice(0, 8)}`).join(', ')}${duration ? `; stopping after ${duration} ms` : '; Ctrl-C to stop'}`,
  )

  let escalated = false
  const reason = await new Promise<string>((resolve) => {
    const timer = duration !== undefined ? setTimeout(() => resolve(`${duration} ms elapsed`), duration) : null
    // The supervisor gave up (restart intensity exceeded) and stopped the workflow: the run is over.
    rt.on('workflow-stop', (e) => {
      if (e.workflowId !== wf.id || !escalated) return
      if (timer) clearTimeout(timer)
      resolve('the supervisor stopped the workflow after too many crashes')
    })
    rt.on('escalation', (e) => {
      if (e.workflow === wf.name) escalated = true
    })
    const onSignal = (sig: NodeJS.Signals) => {
      if (timer) clearTimeout(timer)
      resolve(sig)
      // A second signal while stopping means "now": exit without waiting.
      process.once(sig, () => process.exit(130))
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  io.err(`edgeless: stopping (${reason})`)
  await wf.stop()
  await rt.shutdown()
  await inspector?.close()
  clearInterval(dropTimer)
  const total = drops.total()
  if (total) io.err(`[edgeless] ${total}`)
  io.err('edgeless: stopped')
  if (escalated) return 1
  if (values['fail-on-drop'] === true && drops.count > 0) return 3
  // The shell's convention for a run ended by a signal: 128 + its number (SIGINT 2, SIGTERM 15).
  return reason === 'SIGINT' ? 130 : reason === 'SIGTERM' ? 143 : 0
}

/** How often, at most, the CLI sums up dropped messages while they occur. */
const DROP_REPORT_MS = 5000

/** Dropped messages by reason (error code) and receiver, in total and since the last report. */
class DropCounter {
  count = 0
  private all = new Map<string, Map<string, number>>()
  private recent = new Map<string, Map<string, number>>()
  private recentCount = 0

  add(reason: string, to: string): void {
    this.count++
    this.recentCount++
    for (const m of [this.all, this.recent]) {
      let byName = m.get(reason)
      if (!byName) m.set(reason, (byName = new Map()))
      byName.set(to, (byName.get(to) ?? 0) + 1)
    }
  }

  /** `40000 messages dropped (mailbox-full: 40000 to "log")`, or '' when none. */
  total(): string {
    return describeDrops(this.count, this.all)
  }

  sinceLastReport(): string {
    const s = describeDrops(this.recentCount, this.recent)
    this.recent = new Map()
    this.recentCount = 0
    return s
  }
}

function describeDrops(n: number, by: Map<string, Map<string, number>>): string {
  if (n === 0) return ''
  const parts = [...by].map(([reason, names]) => {
    const sorted = [...names].sort((a, b) => b[1] - a[1])
    const shown = sorted.slice(0, 5).map(([name, k]) => `${k} to ${JSON.stringify(name)}`)
    if (sorted.length > 5) shown.push(`${sorted.slice(5).reduce((a, [, k]) => a + k, 0)} to ${sorted.length - 5} others`)
    return `${reason}: ${shown.join(', ')}`
  })
  return `${n} message${n === 1 ? '' : 's'} dropped (${parts.join('; ')})`
}

async function build(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { positionals, values } = parse(
    args,
    {
      out: { type: 'string', short: 'o' },
      debug: { type: 'boolean' },
      'no-optimize': { type: 'boolean' },
    },
    'build',
  )
  const entry = one(positionals, 'build')
  const out = values['out'] as string | undefined
  if (!out) throw new UsageError('build needs an output file: -o <function.wasm>.')
  try {
    const r = await buildAssemblyScript(entry, out, { optimize: values['no-optimize'] !== true, debug: values['debug'] === true })
    io.out(`${r.out}: ${r.bytes} bytes`)
    return 0
  } catch (e) {
    if (isEdgelessError(e)) throw e
    io.err(`edgeless: building ${entry} failed:\n${(e as Error).message}`)
    return 1
  }
}
