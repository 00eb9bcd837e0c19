// `edgeless run` must not lose messages without a word (issue 18): dead letters and
// mailbox overflow are summed up on stderr while they happen and at exit. Child processes
// of the built CLI, as a user runs it (`npm run build` first).
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { wasmPath } from './helpers/fixtures'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = join(root, 'bin', 'edgeless.mjs')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: string[], timeoutMs = 30000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const killer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`CLI did not exit: ${args.join(' ')}\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.stdout.on('data', (d: Buffer) => {
      stdout += d
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d
    })
    child.on('exit', (code) => {
      clearTimeout(killer)
      setImmediate(() => resolve({ code, stdout, stderr }))
    })
  })
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeless-hostile-cli-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** cast_burst (its function "flood") casts 50,000 lines to a file-log in its init; the log's mailbox holds 10,000. */
function floodWorkflow(): string {
  const file = join(dir, 'flood.json')
  writeFileSync(
    file,
    JSON.stringify({
      functions: [
        {
          name: 'flood',
          class_specification: { id: 'flood', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('cast_burst'), outputs: ['out'] },
          output_mapping: { out: 'log' },
          annotations: { 'max-invocation-ms': '60000' },
        },
      ],
      resources: [{ name: 'log', class_type: 'file-log', output_mapping: {}, configurations: { filename: 'flood.log' } }],
      annotations: {},
    }),
  )
  return file
}

describe('(c) edgeless run reports dropped messages', () => {
  test('50,000 casts into a file-log: the lines written plus the drops counted add up, and the summary says to whom and why, after 5 s and at exit', async () => {
    // Runs past the first 5-second report (the drops happen at once, in the flood's init).
    const r = await cli(['run', floodWorkflow(), '--duration', '5600'])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/^\[edgeless\] \d+ messages dropped \(mailbox-full: \d+ to "log"\) in the last 5 s$/m)
    const written = readFileSync(join(dir, 'flood.log'), 'utf8').split('\n').length - 1
    expect(written).toBeLessThan(50000)
    const m = /^\[edgeless\] (\d+) messages dropped \(mailbox-full: (\d+) to "log"\)$/m.exec(r.stderr)
    expect(m).not.toBeNull()
    expect(Number(m![1])).toBe(50000 - written)
    expect(Number(m![2])).toBe(50000 - written)
    rmSync(join(dir, 'flood.log'))
  })

  test('--fail-on-drop: the same run exits non-zero (3)', async () => {
    const r = await cli(['run', floodWorkflow(), '--duration', '500', '--fail-on-drop'])
    expect(r.stderr).toMatch(/messages dropped \(mailbox-full: \d+ to "log"\)/)
    expect(r.code).toBe(3)
  })

  test('a run without drops prints no summary and --fail-on-drop leaves exit 0', async () => {
    const r = await cli(['run', join(root, 'examples', 'ping-pong', 'workflow.json'), '--duration', '300', '--fail-on-drop'])
    expect(r.stderr).not.toMatch(/dropped/)
    expect(r.code).toBe(0)
  })

  test('--log-root: the file-log writes under it; without it an absolute filename is refused', async () => {
    const logRoot = join(dir, 'logs')
    const file = join(dir, 'abs.json')
    writeFileSync(
      file,
      JSON.stringify({ functions: [], resources: [{ name: 'log', class_type: 'file-log', configurations: { filename: join(logRoot, 'x.log') } }] }),
    )
    const refused = await cli(['validate', file])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/configurations\.filename: .* is an absolute path/)
    expect((await cli(['validate', file, '--log-root', logRoot])).code).toBe(0)
    const run = await cli(['run', file, '--duration', '200', '--log-root', logRoot])
    expect(run.code).toBe(0)
    expect(existsSync(join(logRoot, 'x.log'))).toBe(true)
  })
})

describe('(e) edgeless validate reads only regular files of a bounded size', () => {
  test('/dev/zero as the workflow: one problem, exit 1, at once', async () => {
    const r = await cli(['validate', '/dev/zero'], 10000)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/\/dev\/zero: 1 problem:\n {2}- workflow, \(file\): \/dev\/zero is not a regular file \(a character device\)/)
  })

  test('--max-workflow-bytes and --max-module-bytes', async () => {
    const pingPong = join(root, 'examples', 'ping-pong', 'workflow.json')
    const small = await cli(['validate', pingPong, '--max-workflow-bytes', '10'])
    expect(small.code).toBe(1)
    expect(small.stderr).toMatch(/over the limit of 10 bytes for a workflow file/)
    const mod = await cli(['validate', pingPong, '--max-module-bytes', '100'])
    expect(mod.code).toBe(1)
    expect(mod.stderr).toMatch(/over the limit of 100 bytes for a module/)
  })
})
