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
import { defaultCacheDir, Runtime, type RuntimeOptions, type WorkflowHandle } from './index'
import { startInspector, type Inspector } from './inspector/server'

const USAGE = `Usage:
  edgeless run <workflow.json> [--duration <ms>] [--state-dir <dir>] [--http-port <port>] [--log-level <level>] [--inspect [port]]
  edgeless validate <workflow.json>
  edgeless build <function.ts> -o <function.wasm> [--debug] [--no-optimize]
  edgeless --help | --version

run       starts the workflow and runs it until Ctrl-C (SIGINT), SIGTERM or --duration,
          then stops it gracefully (every stop handler runs, pending state is written).
          Function logs go to stdout, one line each: time, level, function, text.
          --state-dir <dir>   keep function state as files in <dir> (a second run resumes)
          --http-port <port>  port of http-ingress resources without a "port" (default 7008)
          --http-host <addr>  address they listen on (default 127.0.0.1)
          --log-level <l>     error | warn | info | debug | trace (default info)
          --inspect [port]    serve the live inspector on 127.0.0.1 (default port 7007)
validate  checks the workflow (names, mappings, code, resources) and prints every problem.
build     compiles an AssemblyScript function (edgeless/assembly) to an EDGELESS module
          (needs the assemblyscript package: npm install -D assemblyscript).`

/** Exit codes: 0 ok, 1 the workflow could not run, 2 the command line is wrong. */
class UsageError extends Error {}

const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * Run the CLI with `argv` (without `node` and the script). Resolves to the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await main(['validate', 'workflow.json'])
 * ```
 */
export async function main(argv: string[], io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) }): Promise<number> {
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
    if (cmd === 'validate') return await validate(rest, io)
    if (cmd === 'build') return await build(rest, io)
    if (cmd === 'run') return await run(rest, io)
    throw new UsageError(`unknown command "${cmd}".`)
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`edgeless: ${e.message}\n\n${USAGE}`)
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

function parse(args: string[], options: ParseArgsConfig['options']) {
  try {
    return parseArgs({ args, options: options ?? {}, allowPositionals: true, strict: true })
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')}.`)
  }
}

async function validate(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { positionals } = parse(args, {})
  const file = one(positionals, 'validate')
  const rt = new Runtime({ consoleLog: false })
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

function one(positionals: string[], cmd: string): string {
  if (positionals.length !== 1) throw new UsageError(`"${cmd}" takes exactly one workflow file, got ${positionals.length ? positionals.join(' ') : 'none'}.`)
  return positionals[0]!
}

function intOption(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${String(v)}".`)
  return n
}

/** Default port of `--inspect` given without one. */
const INSPECT_PORT = 7007

/**
 * Take `--inspect`, `--inspect <port>` and `--inspect=<port>` out of `args` (parseArgs has no
 * option whose value is optional). Returns the remaining args and the port text, if given.
 */
function takeInspect(args: string[]): { rest: string[]; inspect: string | undefined } {
  const rest: string[] = []
  let inspect: string | undefined
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
      }
    } else if (a.startsWith('--inspect=')) {
      inspect = a.slice('--inspect='.length)
    } else {
      rest.push(a)
    }
  }
  return { rest, inspect }
}

async function run(argv: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { rest: args, inspect } = takeInspect(argv)
  const inspectPort = inspect === undefined ? undefined : intOption(inspect, 'inspect', 0, 65535)
  const { positionals, values } = parse(args, {
    duration: { type: 'string' },
    'state-dir': { type: 'string' },
    'http-port': { type: 'string' },
    'http-host': { type: 'string' },
    'log-level': { type: 'string' },
  })
  const file = one(positionals, 'run')
  const duration = intOption(values['duration'], 'duration', 1, 2 ** 31 - 1)
  const httpPort = intOption(values['http-port'], 'http-port', 0, 65535) ?? 7008
  const levelName = (values['log-level'] as string | undefined) ?? 'info'
  const rank = LEVELS.indexOf(levelName as (typeof LEVELS)[number]) + 1
  if (rank === 0) throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, got "${levelName}".`)
  const stateDir = values['state-dir'] as string | undefined

  const options: RuntimeOptions = {
    consoleLog: false,
    resourceConfig: { 'http-ingress': { port: String(httpPort), address: (values['http-host'] as string | undefined) ?? '127.0.0.1' } },
    ...(stateDir !== undefined ? { stateStore: fileStore({ dir: stateDir }) } : {}),
  }
  const rt = new Runtime(options)
  const now = () => new Date().toISOString()
  const line = (level: string, who: string, text: string) => io.out(`${now()} ${level.toUpperCase().padEnd(5)} ${who}: ${text}`)
  rt.on('log', (e: LogEvent) => { if (e.level <= rank) line(e.levelName, e.name, e.text) })
  // A crash is reported like a log line; the rest of the workflow keeps running.
  rt.on('crash', (e) => line('error', e.name, `CRASH in handle_${e.handler}: ${e.error.message}`))
  rt.on('warning', (e) => { if (rank >= 2) line('warn', e.name, e.message) })
  rt.on('call-timeout', (e) => { if (rank >= 2) line('warn', e.caller ?? 'host', e.error.message) })
  rt.on('call-cycle', (e) => { if (rank >= 2) line('warn', e.caller ?? 'host', e.error.message) })
  rt.on('state-sync-failed', (e) => line('warn', e.name, e.error.message))
  rt.on('state-lost', (e) => line('error', e.name, e.error.message))
  rt.on('state-conflict', (e) => line('error', e.name, e.error.message))
  rt.on('restart', (e) => { if (rank >= 3) line('info', e.name, `restarted (restart #${e.restarts})`) })
  rt.on('escalation', (e) => line('error', e.name, `ESCALATION: ${e.reason.message}`))

  // Started before the workflow, so it sees the instantiation and init of every function.
  let inspector: Inspector | undefined
  if (inspectPort !== undefined) {
    try {
      inspector = await startInspector(rt, { port: inspectPort })
    } catch (e) {
      await rt.shutdown().catch(() => {})
      throw e
    }
    io.err(`edgeless: inspector at ${inspector.url}`)
  }
  // A guest that makes blocking calls and is not in the cache takes seconds to prepare
  // (binaryen's asyncify): a line says so, so that a silent first start is not taken for a hang.
  const cacheDir = defaultCacheDir()
  const stopNotices = onAsyncifyMiss((label) => io.err(`edgeless: preparing ${label} for blocking calls (asyncify, a few seconds; ${cacheDir ? `cached in ${cacheDir} afterwards` : 'not cached: EDGELESS_CACHE_DIR=off'})`))
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
  io.err(`edgeless: workflow "${wf.name}" (${wf.id}) started: ${fns.map((i) => `${i.name}@${i.id.function.slice(0, 8)}`).join(', ')}${duration ? `; stopping after ${duration} ms` : '; Ctrl-C to stop'}`)

  let escalated = false
  const reason = await new Promise<string>((resolve) => {
    const timer = duration !== undefined ? setTimeout(() => resolve(`${duration} ms elapsed`), duration) : null
    // The supervisor gave up (restart intensity exceeded) and stopped the workflow: the run is over.
    rt.on('workflow-stop', (e) => {
      if (e.workflowId !== wf.id || !escalated) return
      if (timer) clearTimeout(timer)
      resolve('the supervisor stopped the workflow after too many crashes')
    })
    rt.on('escalation', (e) => { if (e.workflow === wf.name) escalated = true })
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
  io.err('edgeless: stopped')
  return escalated ? 1 : 0
}

async function build(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const { positionals, values } = parse(args, {
    out: { type: 'string', short: 'o' },
    debug: { type: 'boolean' },
    'no-optimize': { type: 'boolean' },
  })
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
