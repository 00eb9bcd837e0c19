// The `edgeless` CLI end to end, in child processes, as a user runs it (the built package's
// bin; `npm test` builds first).
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { wasmPath } from './helpers/fixtures'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = join(root, 'bin', 'edgeless.mjs')
const pingPong = join(root, 'examples', 'ping-pong', 'workflow.json')

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Run the CLI; `onStdout` may act on output as it arrives (e.g. send SIGINT). */
function cli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; onStdout?: (all: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const killer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`CLI did not exit: ${args.join(' ')}\n${stdout}\n${stderr}`))
    }, opts.timeoutMs ?? 20000)
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d
      opts.onStdout?.(stdout, child)
    })
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d
    })
    child.on('exit', (code, signal) => {
      clearTimeout(killer)
      // Let the pipes drain before resolving.
      setImmediate(() => resolve({ code, signal, stdout, stderr }))
    })
  })
}

const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG|TRACE) [^:]+: .*$/

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeless-cli-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('edgeless validate', () => {
  test('a good workflow: exit 0', async () => {
    const r = await cli(['validate', pingPong])
    expect(r.stdout.trim()).toBe(`${pingPong}: ok`)
    expect(r.code).toBe(0)
  })

  test('a bad workflow: every problem printed, exit 1, no stack trace', async () => {
    const file = join(dir, 'bad.json')
    writeFileSync(
      file,
      JSON.stringify({
        functions: [
          {
            name: 'p',
            class_specification: { id: 'p', function_type: 'RUST_WASM', version: '1', code: 'missing.wasm', outputs: [] },
            output_mapping: { x: 'ghost' },
          },
          { name: 'p', class_specification: { id: 'p', function_type: 'CONTAINER', version: '1', code: 'img', outputs: [] } },
        ],
        resources: [{ name: 'log', class_type: 'file-log', configurations: {} }],
      }),
    )
    const r = await cli(['validate', file])
    expect(r.code).toBe(1)
    const lines = r.stderr.trim().split('\n')
    expect(lines[0]).toBe(`${file}: 5 problems:`)
    expect(lines.slice(1).join('\n')).toMatch(/function "p \(#1\)", class_specification.function_type: "CONTAINER" is not supported/)
    expect(lines.slice(1).join('\n')).toMatch(/function "p", output_mapping.x: maps alias "x" to "ghost"/)
    expect(lines.slice(1).join('\n')).toMatch(/function "p", class_specification.code: cannot read the code/)
    expect(lines.slice(1).join('\n')).toMatch(/function "p", name: the name "p" is already used/)
    expect(lines.slice(1).join('\n')).toMatch(/resource "log", configurations.filename: is required/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})

describe('edgeless build', () => {
  test('compiles an AssemblyScript function into a module the runtime runs; a compile error names file:line', async () => {
    const src = join(root, 'examples', 'assemblyscript', 'template.ts')
    const out = join(dir, 'template.wasm')
    const r = await cli(['build', src, '-o', out], { timeoutMs: 60_000 })
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toMatch(/template\.wasm: \d+ bytes$/)
    const { Runtime } = await import('../lib/node/index')
    const rt = new Runtime({ consoleLog: false })
    await rt.spawn({ name: 'template', module: out })
    await rt.shutdown()
    const bad = join(dir, 'bad.ts')
    writeFileSync(bad, 'export function x(: i32 {}\n')
    const e = await cli(['build', bad, '-o', join(dir, 'bad.wasm')], { timeoutMs: 60_000 })
    expect(e.code).toBe(1)
    expect(e.stderr).toMatch(/bad\.ts:1:\d+: ERROR/)
    const u = await cli(['build', src])
    expect(u.code).toBe(2)
    expect(u.stderr).toMatch(/-o <function\.wasm>/)
  }, 90_000)
})

describe('edgeless run', () => {
  // Each function log line shows its target before the text, as upstream's telemetry prints `<target>: <message>`.
  test('runs ping-pong for --duration, logs one line per function log, stops gracefully, exit 0', async () => {
    const r = await cli(['run', pingPong, '--duration', '1500'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    for (const l of lines) expect(l).toMatch(LINE)
    expect(lines.filter((l) => / INFO {2}pinger ping: Got Reply: PONG$/.test(l)).length).toBeGreaterThanOrEqual(2)
    expect(lines.some((l) => / INFO {2}ponger pong: Ponger: 'Stop' called$/.test(l))).toBe(true)
    expect(lines.some((l) => / INFO {2}pinger ping: Pinger: 'Stop' called$/.test(l))).toBe(true)
    expect(r.stderr).toMatch(/workflow "ping-pong\/workflow" .* started/)
    expect(r.stderr).toMatch(/stopping \(1500 ms elapsed\)/)
  })

  test('an empty transform cache: one line says a guest is being prepared and where it is cached; the next run is silent', async () => {
    const cache = mkdtempSync(join(dir, 'cache-'))
    const first = await cli(['run', pingPong, '--duration', '300'], { env: { EDGELESS_CACHE_DIR: cache }, timeoutMs: 60_000 })
    expect(first.code).toBe(0)
    const notes = first.stderr.split('\n').filter((l) => /preparing/.test(l))
    expect(notes).toEqual([`edgeless: preparing function "pinger" for blocking calls (asyncify, a few seconds; cached in ${cache} afterwards)`])
    // Before the workflow's start line: it explains the wait, not what came after it.
    expect(first.stderr.indexOf('preparing')).toBeLessThan(first.stderr.indexOf('started'))
    expect(readdirSync(cache).filter((f) => f.endsWith('.wasm'))).toHaveLength(1)
    const again = await cli(['run', pingPong, '--duration', '300'], { env: { EDGELESS_CACHE_DIR: cache } })
    expect(again.code).toBe(0)
    expect(again.stderr).not.toMatch(/preparing/)
    expect(again.stdout).toMatch(/Got Reply: PONG/)
  }, 90_000)

  test('--state-dir: a second run resumes where the first stopped; SIGINT stops with the state written', async () => {
    const stateDir = join(dir, 'state')
    let interrupted = false
    const first = await cli(['run', pingPong, '--state-dir', stateDir], {
      // Stop with Ctrl-C (once: a second one means "exit now") after two answered pings.
      onStdout: (all, child) => {
        if (!interrupted && (all.match(/Got Reply: PONG/g) ?? []).length >= 2) {
          interrupted = true
          child.kill('SIGINT')
        }
      },
    })
    // Stopped by Ctrl-C: the shell's convention, 128 + SIGINT's 2.
    expect(first.code).toBe(130)
    expect(first.stderr).toMatch(/stopping \(SIGINT\)/)
    expect(first.stdout).toMatch(/Pinger: 'Stop' called/)
    const files = readdirSync(stateDir).filter((f) => f.endsWith('.state'))
    expect(files).toContain('ping-pong%2Fworkflow%2Fpinger.state')
    const state = readFileSync(join(stateDir, 'ping-pong%2Fworkflow%2Fpinger.state'), 'utf8')
    const count = Number(/"count":(\d+)/.exec(state)![1])
    expect(count).toBeGreaterThanOrEqual(2)

    const second = await cli(['run', pingPong, '--state-dir', stateDir, '--duration', '300'])
    expect(second.code).toBe(0)
    // The first ping of the second run carries the next number: PING-<count>.
    const firstCall = second.stdout.split('\n').find((l) => /Ponger: 'Call' called/.test(l))!
    expect(firstCall).toContain(`[${[...Buffer.from(`PING-${count}`)].join(', ')}]`)
  })

  test('a crash inside a function is a log line and the run goes on', async () => {
    // The counter panics on a message that is not an integer; the sensor sends "11.36".
    const file = join(dir, 'crashy.json')
    const f = (name: string, code: string, mapping: Record<string, string>, init?: string) => ({
      name,
      class_specification: { id: name, function_type: 'RUST_WASM', version: '0.1', code, outputs: Object.keys(mapping) },
      output_mapping: mapping,
      annotations: init ? { 'init-payload': init } : {},
    })
    writeFileSync(
      file,
      JSON.stringify({
        functions: [
          f('sensor', wasmPath('sensor_simulator'), { output: 'counter' }, 'period=100'),
          { ...f('counter', wasmPath('counter'), {}), annotations: { restart: 'temporary' } },
          f('pinger', wasmPath('ping'), { ponger: 'ponger' }),
          f('ponger', wasmPath('pong'), {}),
        ],
      }),
    )
    const r = await cli(['run', file, '--duration', '1500'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    const crash = lines.findIndex((l) => / ERROR counter: CRASH in handle_cast: .*unreachable \(a Rust panic/.test(l))
    expect(crash).toBeGreaterThanOrEqual(0)
    // The pinger kept going after the crash.
    expect(lines.slice(crash + 1).some((l) => /pinger ping: Got Reply: PONG/.test(l))).toBe(true)
  })

  test('a function that keeps crashing: restarts are logged, then the supervisor escalates and the run ends with exit 1', async () => {
    const file = join(dir, 'escalating.json')
    writeFileSync(
      file,
      JSON.stringify({
        functions: [
          {
            name: 'sensor',
            class_specification: { id: 's', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('sensor_simulator'), outputs: ['output'] },
            output_mapping: { output: 'counter' },
            annotations: { 'init-payload': 'period=20' },
          },
          { name: 'counter', class_specification: { id: 'c', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('counter'), outputs: [] } },
        ],
        annotations: { 'max-restarts': '2' },
      }),
    )
    const r = await cli(['run', file, '--duration', '20000'])
    expect(r.code).toBe(1)
    expect(r.stdout.match(/ INFO {2}counter: restarted \(restart #\d\)/g)).toHaveLength(2)
    expect(r.stdout).toMatch(/ ERROR counter: ESCALATION: The supervisor of workflow "[^"]+" exceeded its restart intensity: 3 restarts/)
    expect(r.stderr).toMatch(/stopping \(the supervisor stopped the workflow after too many crashes\)/)
  })

  describe('user mistakes: one clear paragraph, non-zero exit, no stack trace', () => {
    const noStack = (r: Run) => expect(r.stderr).not.toMatch(/\n\s+at /)

    test('missing workflow file', async () => {
      const r = await cli(['run', join(dir, 'nope.json'), '--duration', '100'])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^edgeless: Workflow .*nope\.json has 1 problem.*cannot read the workflow file/s)
      noStack(r)
    })

    test('bad flags and commands', async () => {
      for (const args of [
        ['run'],
        ['run', pingPong, '--duration', 'soon'],
        ['run', pingPong, '--bogus'],
        ['frobnicate'],
        ['run', pingPong, '--log-level', 'loud'],
      ]) {
        const r = await cli(args)
        expect(r.code).toBe(2)
        expect(r.stderr).toMatch(/^edgeless: .+\n\nUsage:/)
        noStack(r)
      }
      const help = await cli(['--help'])
      expect(help.code).toBe(0)
      expect(help.stdout).toMatch(/^Usage:/)
    })

    test('every command has --help; a mistyped flag or command gets a "did you mean"; --inspect with a word says what it takes', async () => {
      for (const cmd of ['run', 'validate', 'build']) {
        const r = await cli([cmd, '--help'])
        expect(r.code).toBe(0)
        expect(r.stdout).toMatch(new RegExp(`^Usage:\n  edgeless ${cmd} `))
        // Only that command's paragraph, not the others'.
        for (const other of ['run', 'validate', 'build'].filter((c) => c !== cmd)) expect(r.stdout).not.toMatch(new RegExp(`^${other} {2,}`, 'm'))
        expect(r.stderr).toBe('')
      }
      const typo = await cli(['run', pingPong, '--stat-dir', 'x'])
      expect(typo.code).toBe(2)
      expect(typo.stderr).toMatch(/^edgeless: "run" has no option --stat-dir\. Did you mean --state-dir\?\n\nUsage:\n {2}edgeless run /)
      const cmd = await cli(['valdate', pingPong])
      expect(cmd.stderr).toMatch(/unknown command "valdate"\. Did you mean "validate"\?/)
      const inspect = await cli(['run', '--inspect', 'abc', pingPong])
      expect(inspect.code).toBe(2)
      expect(inspect.stderr).toMatch(/--inspect takes a port number, and "abc" is not one/)
      noStack(typo)
    })

    test('port in use', async () => {
      const blocker: Server = createServer()
      await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()))
      const port = (blocker.address() as { port: number }).port
      const file = join(dir, 'ingress.json')
      writeFileSync(
        file,
        JSON.stringify({
          functions: [{ name: 'ponger', class_specification: { id: 'pong', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('pong'), outputs: [] } }],
          resources: [{ name: 'in', class_type: 'http-ingress', output_mapping: { new_request: 'ponger' }, configurations: { host: '', async: 'true' } }],
        }),
      )
      try {
        const r = await cli(['run', file, '--http-port', String(port), '--duration', '100'])
        expect(r.code).toBe(1)
        expect(r.stderr).toMatch(new RegExp(`port ${port} .*in use`))
        noStack(r)
      } finally {
        blocker.close()
      }
    })
  })
})
