// First contact: a user's jest project that tests a workflow with `edgeless/testing`, set up
// as the getting-started page says (npm init, jest + ts-jest + typescript, `ts-jest
// config:init`, no tsconfig.json), runs green on its FIRST run: an empty transform cache
// (so binaryen is loaded and ping.wasm asyncified), no jest flags, jest's default 5 s timeout.
// Once with ts-jest's default CommonJS setup (jest's CJS sandbox cannot import() binaryen,
// an ES module: the Node entry asyncifies in a worker thread), once as a native-ESM project
// (`"type": "module"`, node --experimental-vm-modules). The package is the packed tarball, so
// build first (`npm test` does). Offline-friendly: jest, ts-jest, typescript and @types/jest
// are linked from this repository's node_modules instead of downloaded.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The environment of a user's shell: none of this repository's jest or node settings. */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(NODE_OPTIONS|JEST_WORKER_ID|EDGELESS_.*|NODE_ENV)$/.test(k)) env[k] = v
  return { ...env, ...extra }
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 120_000): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` }
}

function runOk(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv({})): string {
  const r = run(cmd, args, cwd, env)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status}:\n${r.out}`)
  return r.out
}

// What a user writes: ten virtual seconds of ping-pong, through the test kit and its matchers.
const TEST = `import { Runtime, utf8 } from 'edgeless'
import { createTestKit } from 'edgeless/testing'
import 'edgeless/testing/jest'

test('the pinger pings every virtual second and every ping is answered PONG', async () => {
  const kit = createTestKit({ Runtime })
  await kit.startWorkflow('ping-pong/workflow.json')
  await kit.advance(10_000)
  const pings = kit.trace.between('pinger', 'ponger')
  expect(pings.map((e) => e.text)).toEqual(Array.from({ length: 11 }, (_, i) => \`"PING-\${i}"\`))
  expect(kit).toHaveSent('pinger', 'ponger', 'PING-10')
  const reply = await kit.call('ponger', 'hello', { from: 'pinger' })
  expect(reply).toHaveReplied('PONG')
  expect(reply.kind === 'reply' && utf8(reply.data)).toBe('PONG')
  await kit.shutdown()
})
`

// The platform-neutral kit (no Node Runtime given) prepares modules in the test's own thread,
// which jest's CommonJS sandbox does not let import binaryen: the error must say so, and how.
const CORE_KIT_TEST = `import { fileLoader } from 'edgeless'
import { createTestKit } from 'edgeless/testing'

test('without the Node Runtime, a guest that calls cannot be prepared here, and the error says why', async () => {
  const kit = createTestKit()
  const bytes = await fileLoader('ping-pong/ping.wasm')
  await expect(kit.runtime.spawn({ name: 'pinger', module: bytes })).rejects.toThrow(/refuses to import\\(\\) one.*createTestKit\\(\\{ Runtime \\}\\)/)
  await kit.shutdown()
})
`

// ts-jest's config:init writes `require(...)` into an ES module when the package is "type":
// "module"; this is the native-ESM setup its documentation gives instead.
const ESM_CONFIG = `import { createDefaultEsmPreset } from 'ts-jest'

/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  ...createDefaultEsmPreset(),
}
`

// ts-jest compiles ES modules only when the project's tsconfig asks for them.
const ESM_TSCONFIG = { compilerOptions: { module: 'NodeNext', target: 'ES2022', strict: true, types: ['jest'] } }

/** Link a package of this repository's node_modules into the consumer's (and its bin). */
function linkPackage(app: string, name: string, bins: Record<string, string>): void {
  const dest = join(app, 'node_modules', name)
  mkdirSync(join(dest, '..'), { recursive: true })
  symlinkSync(realpathSync(join(root, 'node_modules', name)), dest)
  mkdirSync(join(app, 'node_modules/.bin'), { recursive: true })
  for (const [bin, file] of Object.entries(bins)) symlinkSync(join('..', name, file), join(app, 'node_modules/.bin', bin))
}

/** The workflow, as a user copies the example: workflow.json with its wasm next to it. */
function copyPingPong(app: string): void {
  const dir = join(app, 'ping-pong')
  mkdirSync(dir)
  const wf = readFileSync(join(root, 'examples/ping-pong/workflow.json'), 'utf8').replaceAll('../../fixtures/wasm/', './')
  writeFileSync(join(dir, 'workflow.json'), wf)
  for (const f of ['ping.wasm', 'pong.wasm']) copyFileSync(join(root, 'fixtures/wasm', f), join(dir, f))
}

let tmp = ''
let cjs = ''
let esm = ''

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'edgeless-consumer-'))
  const packed = JSON.parse(runOk('npm', ['pack', '--json', '--pack-destination', tmp], root)) as { filename: string }[]
  const tarball = join(tmp, packed[0]!.filename)

  // CommonJS: npm init -y, the tarball from npm, the test tools linked, ts-jest config:init.
  cjs = join(tmp, 'cjs')
  mkdirSync(cjs)
  runOk('npm', ['init', '-y'], cjs)
  runOk('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], cjs)
  linkPackage(cjs, 'jest', { jest: 'bin/jest.js' })
  linkPackage(cjs, 'ts-jest', { 'ts-jest': 'cli.js' })
  linkPackage(cjs, 'typescript', { tsc: 'bin/tsc' })
  linkPackage(cjs, '@types/jest', {})
  runOk('node', ['node_modules/ts-jest/cli.js', 'config:init'], cjs)
  expect(existsSync(join(cjs, 'jest.config.js'))).toBe(true)
  expect(existsSync(join(cjs, 'tsconfig.json'))).toBe(false)
  copyPingPong(cjs)
  writeFileSync(join(cjs, 'ping-pong.test.ts'), TEST)
  writeFileSync(join(cjs, 'core-kit.test.ts'), CORE_KIT_TEST)

  // Native ESM: the same project as "type": "module" (same installed packages).
  esm = join(tmp, 'esm')
  mkdirSync(esm)
  const pkg = JSON.parse(readFileSync(join(cjs, 'package.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(esm, 'package.json'), JSON.stringify({ ...pkg, name: 'esm', type: 'module' }, null, 2))
  symlinkSync(join(cjs, 'node_modules'), join(esm, 'node_modules'))
  writeFileSync(join(esm, 'jest.config.js'), ESM_CONFIG)
  writeFileSync(join(esm, 'tsconfig.json'), JSON.stringify(ESM_TSCONFIG, null, 2))
  copyPingPong(esm)
  writeFileSync(join(esm, 'ping-pong.test.ts'), TEST)
}, 180_000)

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

/** Run the consumer's jest with an empty transform cache; the cache must be filled after. */
function firstRun(app: string, nodeArgs: string[]): { status: number | null; out: string; cached: string[] } {
  const cache = mkdtempSync(join(tmp, 'cache-'))
  const r = run('node', [...nodeArgs, 'node_modules/jest/bin/jest.js'], app, userEnv({ EDGELESS_CACHE_DIR: cache }))
  return { ...r, cached: readdirSync(cache).filter((f) => f.endsWith('.wasm')) }
}

test('CommonJS (ts-jest config:init, no tsconfig): the first run passes, types found', () => {
  const r = firstRun(cjs, [])
  expect({ status: r.status, out: r.out }).toEqual({ status: 0, out: expect.stringContaining('Tests:       2 passed, 2 total') })
  // Cold for real: ping.wasm was asyncified in this run and cached.
  expect(r.cached).toHaveLength(1)
}, 120_000)

test('native ESM (--experimental-vm-modules): the first run passes', () => {
  const r = firstRun(esm, ['--experimental-vm-modules', '--no-warnings'])
  expect({ status: r.status, out: r.out }).toEqual({ status: 0, out: expect.stringContaining('Tests:       1 passed, 1 total') })
  expect(r.cached).toHaveLength(1)
}, 120_000)
