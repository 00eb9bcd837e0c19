// The package as published: the exports map agrees with the build, the platform-neutral
// core pulls in no Node builtins, and the packed tarball installs and works from a scratch
// project (ESM, CommonJS and TypeScript consumers). Runs against dist/, so build first
// (`npm test` does).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string
  main?: string
  module?: string
  types?: string
  exports: Record<string, unknown>
  dependencies?: Record<string, string>
  bin?: Record<string, string>
  files: string[]
}

/** The public entries tsup builds (tsup.config.ts), each in every published format. */
const ENTRIES = ['index', 'node', 'adapters/memory', 'adapters/file']
/** Built entries reached through package.json `bin`, not the exports map. */
const BIN_ENTRIES = ['cli']
const FORMATS = ['.js', '.cjs', '.d.ts', '.d.cts']

/** The dist files that are published entries (not chunks, not source maps). */
function builtEntryFiles(): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      // chunk-* (code) and types-* (declarations) are shared chunks, not entries.
      else if (!/^(chunk|types)-/.test(e.name) && !e.name.endsWith('.map')) out.push(relative(root, p).split(sep).join('/'))
    }
  }
  walk(dist)
  return out.sort()
}

interface Target { subpath: string; conditions: string[]; file: string }

/** Every string target of the exports map, with the condition path leading to it. */
function exportTargets(): Target[] {
  const out: Target[] = []
  const walk = (subpath: string, node: unknown, conditions: string[]) => {
    if (typeof node === 'string') out.push({ subpath, conditions, file: node })
    else if (Array.isArray(node)) for (const n of node) walk(subpath, n, conditions)
    else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(subpath, v, [...conditions, k])
    else if (node !== null) throw new Error(`exports["${subpath}"] ${conditions.join('.')}: unexpected ${typeof node}`)
  }
  for (const [subpath, node] of Object.entries(pkg.exports)) walk(subpath, node, [])
  return out
}

/** Every condition object (nested) of the exports map, with where it is. */
function conditionObjects(): { where: string; keys: string[] }[] {
  const out: { where: string; keys: string[] }[] = []
  const walk = (where: string, node: unknown) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return
    out.push({ where, keys: Object.keys(node) })
    for (const [k, v] of Object.entries(node)) walk(`${where}.${k}`, v)
  }
  for (const [subpath, node] of Object.entries(pkg.exports)) walk(`exports["${subpath}"]`, node)
  return out
}

const norm = (f: string) => f.replace(/^\.\//, '')

beforeAll(() => {
  if (!existsSync(join(dist, 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
})

describe('exports map and build agree', () => {
  test('every target of the exports map exists', () => {
    const targets = exportTargets()
    expect(targets.length).toBeGreaterThan(0)
    const missing = targets.filter((t) => !existsSync(join(root, t.file))).map((t) => `${t.subpath} [${t.conditions.join('.')}] -> ${t.file}`)
    expect(missing).toEqual([])
    for (const t of targets) expect(t.file.startsWith('./')).toBe(true)
  })

  test('the legacy fields (main, module, types) point at existing files', () => {
    for (const field of ['main', 'module', 'types'] as const) {
      const f = pkg[field]
      if (f !== undefined) expect({ field, exists: existsSync(join(root, f)) }).toEqual({ field, exists: true })
    }
  })

  test('`types` comes first and `default` last in every condition object', () => {
    const objs = conditionObjects()
    const badTypes = objs.filter((o) => o.keys.includes('types') && o.keys[0] !== 'types').map((o) => `${o.where}: ${o.keys.join(', ')}`)
    const badDefault = objs.filter((o) => o.keys.includes('default') && o.keys[o.keys.length - 1] !== 'default').map((o) => `${o.where}: ${o.keys.join(', ')}`)
    expect(badTypes).toEqual([])
    expect(badDefault).toEqual([])
  })

  test('import targets are ESM (.js/.d.ts), require targets CommonJS (.cjs/.d.cts)', () => {
    const bad: string[] = []
    for (const t of exportTargets()) {
      if (t.subpath === './package.json') continue
      const types = t.conditions.includes('types')
      if (t.conditions.includes('import') && !t.file.endsWith(types ? '.d.ts' : '.js')) bad.push(`${t.subpath} [${t.conditions.join('.')}] -> ${t.file}`)
      if (t.conditions.includes('require') && !t.file.endsWith(types ? '.d.cts' : '.cjs')) bad.push(`${t.subpath} [${t.conditions.join('.')}] -> ${t.file}`)
    }
    expect(bad).toEqual([])
  })

  test('every built entry is referenced by the exports map, and nothing else is', () => {
    const referenced = new Set(exportTargets().map((t) => norm(t.file)))
    const expected = ENTRIES.flatMap((e) => FORMATS.map((f) => `dist/${e}${f}`)).sort()
    // The entries tsup is configured to build are all there...
    expect(expected.filter((f) => !existsSync(join(root, f)))).toEqual([])
    // ...every entry file in dist (whatever tsup produced) is reachable through the map...
    const binFiles = BIN_ENTRIES.flatMap((e) => FORMATS.map((f) => `dist/${e}${f}`))
    const built = builtEntryFiles().filter((f) => !binFiles.includes(f))
    expect(built.filter((f) => !referenced.has(f))).toEqual([])
    expect(built).toEqual(expected)
    // The bin launcher exists, is executable, and loads a CLI entry that was built.
    for (const [name, target] of Object.entries(pkg.bin ?? {})) {
      const launcher = readFileSync(join(root, target), 'utf8')
      expect({ name, shebang: launcher.startsWith('#!/usr/bin/env node\n') }).toEqual({ name, shebang: true })
      const imported = /from '\.\.\/(dist\/[^']+)'/.exec(launcher)?.[1]
      expect(imported && existsSync(join(root, imported))).toBe(true)
      expect(pkg.files).toEqual(expect.arrayContaining([target.replace(/^\.\//, '').split('/')[0]]))
    }
    // ...and the map references nothing outside them (besides package.json).
    expect([...referenced].filter((f) => f !== 'package.json' && !expected.includes(f))).toEqual([])
  })
})

// ---- the core stays platform neutral ---------------------------------------------------

const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')))

/** Module specifiers of a JS/TS file: static imports and re-exports, dynamic imports, requires. */
function specifiers(code: string): string[] {
  const out: string[] = []
  const patterns = [
    /^\s*(?:import|export)\b[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/gm, // import x from 'y' / export * from 'y'
    /^\s*import\s*(['"])([^'"]+)\1/gm, // import 'y'
    /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g, // import('y')
    /\brequire\s*\(\s*(['"])([^'"]+)\1\s*\)/g, // require('y')
  ]
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[2]!)
  return out
}

const isBuiltin = (s: string) => s.startsWith('node:') || BUILTINS.has(s) || BUILTINS.has(s.split('/')[0]!)
/** Anything that looks like loading a node: module, even where the specifier scan would miss it. */
const NODE_PREFIX = /(?:\bfrom|\bimport|\brequire\s*\(|\bimport\s*\()\s*['"]node:/

/** The dist files reachable from `entries` through relative imports, with their bare specifiers. */
function closure(entries: string[]): { files: string[]; bare: Map<string, string[]> } {
  const seen = new Set<string>()
  const bare = new Map<string, string[]>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    if (!existsSync(file)) throw new Error(`${relative(root, file)} is imported but does not exist`)
    seen.add(file)
    const code = readFileSync(file, 'utf8')
    for (const s of specifiers(code)) {
      if (s.startsWith('.')) visit(resolve(dirname(file), s))
      else bare.set(relative(root, file), [...(bare.get(relative(root, file)) ?? []), s])
    }
  }
  for (const e of entries) visit(join(root, e))
  return { files: [...seen].map((f) => relative(root, f).split(sep).join('/')).sort(), bare }
}

/** Builtin imports found in these files: "file: specifier". */
function builtinImports(files: string[], bare: Map<string, string[]>): string[] {
  const hits: string[] = []
  for (const f of files) {
    for (const s of bare.get(f) ?? []) if (isBuiltin(s)) hits.push(`${f}: ${s}`)
    if (NODE_PREFIX.test(readFileSync(join(root, f), 'utf8'))) hits.push(`${f}: node: import`)
  }
  return [...new Set(hits)].sort()
}

describe('the platform-neutral core has no Node builtins', () => {
  const CORE = ['dist/index.js', 'dist/index.cjs', 'dist/adapters/memory.js', 'dist/adapters/memory.cjs']

  test('dist: core and memory adapter, with every chunk they load', () => {
    const { files, bare } = closure(CORE)
    // The scan really followed the chunks (tsup splits the code into shared chunks).
    expect(files.some((f) => /chunk-.*\.js$/.test(f))).toBe(true)
    expect(files.some((f) => /chunk-.*\.cjs$/.test(f))).toBe(true)
    expect(builtinImports(files, bare)).toEqual([])
    // Whatever bare packages they load are declared dependencies (shipped with the package).
    const deps = new Set(Object.keys(pkg.dependencies ?? {}))
    const undeclared = [...bare.entries()].flatMap(([f, ss]) => ss.filter((s) => !deps.has(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!)).map((s) => `${f}: ${s}`))
    expect(undeclared).toEqual([])
  })

  test('the scan does find the Node entry\'s builtins (control)', () => {
    const { files, bare } = closure(['dist/node.js', 'dist/node.cjs'])
    // (tsup strips the node: prefix unless removeNodeProtocol is false, so accept both.)
    const hits = builtinImports(files, bare).map((h) => h.replace(': node:', ': '))
    for (const ext of ['.js', '.cjs']) {
      const found = hits.filter((h) => h.split(':')[0]!.endsWith(ext)).map((h) => h.split(': ')[1])
      expect(found).toEqual(expect.arrayContaining(['fs/promises', 'url', 'path', 'http']))
    }
  })

  test('sources: lib/ (outside lib/node/) and adapters/memory.ts, adapters/types.ts', () => {
    const files: string[] = []
    const walk = (dir: string) => {
      for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
        const p = `${dir}/${e.name}`
        if (e.isDirectory()) { if (p !== 'lib/node') walk(p) } else if (e.name.endsWith('.ts')) files.push(p)
      }
    }
    walk('lib')
    files.push('adapters/memory.ts', 'adapters/types.ts')
    expect(files).toEqual(expect.arrayContaining(['lib/index.ts', 'lib/runtime.ts']))
    const hits: string[] = []
    for (const f of files) {
      const code = readFileSync(join(root, f), 'utf8')
      for (const s of specifiers(code)) if (isBuiltin(s)) hits.push(`${f}: ${s}`)
      if (NODE_PREFIX.test(code)) hits.push(`${f}: node: import`)
    }
    expect([...new Set(hits)]).toEqual([])
    // Control: the same scan flags the Node entry.
    expect(specifiers(readFileSync(join(root, 'lib/node/index.ts'), 'utf8')).filter(isBuiltin)).toEqual(['node:fs/promises', 'node:path', 'node:url'])
  })
})

// ---- pack, install, use ----------------------------------------------------------------

/** Environment for child processes: without jest's NODE_OPTIONS or npm's npm_* variables
 *  (npm_config_local_prefix etc. would point a nested npm at this project). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !/^npm_/i.test(k)) env[k] = v
  return env
}

function run(cmd: string, args: string[], cwd: string, timeout = 60_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: childEnv(), encoding: 'utf8', timeout })
}

/** Run and require success; the error carries the output. */
function runOk(cmd: string, args: string[], cwd: string, timeout = 60_000): string {
  const r = run(cmd, args, cwd, timeout)
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

const TSC = join(root, 'node_modules/typescript/bin/tsc')
const TSC_ARGS = ['--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--strict']

const ESM_SCRIPT = `
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Runtime, utf8, fileLoader } from 'edgeless'
import { memoryStore } from 'edgeless/adapters/memory'

console.log('resolved ' + fileURLToPath(import.meta.resolve('edgeless')))
console.log('fileLoader ' + typeof fileLoader)
const wasmFile = fileURLToPath(new URL('./pong.wasm', import.meta.url))
const rt = new Runtime({ consoleLog: false, stateStore: memoryStore() })
const pong = await rt.spawn({ name: 'ponger', module: wasmFile })
const r = await rt.call(pong, 'hi')
console.log('esm ' + r.kind + ' ' + (r.kind === 'reply' ? utf8(r.data) : ''))
await rt.shutdown()

// The platform-neutral core (the "default" condition) from the installed files, on bytes.
const core = await import(new URL('./node_modules/edgeless/dist/index.js', import.meta.url))
const crt = new core.Runtime({ consoleLog: false })
const cpong = await crt.spawn({ name: 'ponger', module: new Uint8Array(readFileSync(wasmFile)) })
const cr = await crt.call(cpong, 'hi')
console.log('core ' + cr.kind + ' ' + (cr.kind === 'reply' ? core.utf8(cr.data) : ''))
await crt.shutdown()
`

const CJS_SCRIPT = `
const path = require('node:path')
const { Runtime, utf8 } = require('edgeless')
const { memoryStore } = require('edgeless/adapters/memory')

console.log('resolved ' + require.resolve('edgeless'))
console.log('memory ' + require.resolve('edgeless/adapters/memory'))
let deep = 'allowed'
try { require('edgeless/dist/index.cjs') } catch (e) { deep = e.code }
console.log('deep ' + deep)

;(async () => {
  const store = memoryStore()
  const rt = new Runtime({ consoleLog: false, stateStore: store })
  const pong = await rt.spawn({ name: 'ponger', module: path.join(__dirname, 'pong.wasm') })
  const r = await rt.call(pong, 'hi')
  console.log('cjs ' + r.kind + ' ' + (r.kind === 'reply' ? utf8(r.data) : ''))
  await rt.shutdown()
})().catch((e) => { console.error(e); process.exit(1) })
`

const TYPES_OK_ESM = `
import { Runtime, type CallResult, EdgelessError, utf8, fileLoader, type SourceLoader } from 'edgeless'
import { memoryStore } from 'edgeless/adapters/memory'

const loader: SourceLoader = fileLoader
const rt = new Runtime({ consoleLog: false, stateStore: memoryStore(), loadSource: loader })
const pong = await rt.spawn({ name: 'ponger', module: './pong.wasm' })
const r: CallResult = await rt.call(pong, 'hi')
if (r.kind === 'reply') { const s: string = utf8(r.data); console.log(s) }
try { await rt.call(pong, new Uint8Array([1, 2])) } catch (e) { if (e instanceof EdgelessError) { const code: string = e.code; console.log(code) } }
await rt.shutdown()
`

const TYPES_OK_CJS = `
import { Runtime, type CallResult, EdgelessError } from 'edgeless'
import { memoryStore } from 'edgeless/adapters/memory'

export async function main(): Promise<CallResult> {
  const rt = new Runtime({ stateStore: memoryStore() })
  const pong = await rt.spawn({ name: 'ponger', module: './pong.wasm' })
  try { return await rt.call(pong, 'hi') } catch (e) { if (e instanceof EdgelessError) throw new Error(e.code); throw e } finally { await rt.shutdown() }
}
`

const TYPES_BAD = `
import { Runtime } from 'edgeless'

const rt = new Runtime()
const pong = await rt.spawn({ name: 'ponger', module: './pong.wasm' })
await rt.call(pong, 42)
`

describe('the packed tarball installs and works', () => {
  let tmp = ''
  let app = ''
  let packedFiles: string[] = []

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'edgeless-pack-'))
    const packs = JSON.parse(runOk('npm', ['pack', '--json', '--pack-destination', tmp], root, 60_000)) as { filename: string; files: { path: string }[] }[]
    expect(packs).toHaveLength(1)
    const tarball = join(tmp, packs[0]!.filename)
    expect(existsSync(tarball)).toBe(true)
    packedFiles = packs[0]!.files.map((f) => f.path)

    app = join(tmp, 'app')
    mkdirSync(app)
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'edgeless-scratch', version: '0.0.0', private: true, type: 'module' }, null, 2))
    runOk('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], app, 150_000)
    copyFileSync(join(root, 'fixtures/wasm/pong.wasm'), join(app, 'pong.wasm'))
  }, 180_000)

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  test('the tarball holds every exports target and no sources or tests', () => {
    const files = new Set(packedFiles)
    const missing = exportTargets().map((t) => norm(t.file)).filter((f) => !files.has(f))
    expect(missing).toEqual([])
    expect(packedFiles.filter((f) => /^(lib|adapters|__tests__|fixtures|bench|examples)\//.test(f))).toEqual([])
  })

  test('installed as a real copy with its dependencies', () => {
    const installed = join(app, 'node_modules/edgeless')
    expect(existsSync(join(installed, 'package.json'))).toBe(true)
    expect(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).name).toBe(pkg.name)
    for (const dep of Object.keys(pkg.dependencies ?? {})) expect({ dep, installed: existsSync(join(app, 'node_modules', dep, 'package.json')) }).toEqual({ dep, installed: true })
  })

  test('ESM: import from "edgeless" spawns pong and gets PONG', () => {
    writeFileSync(join(app, 'use.mjs'), ESM_SCRIPT)
    const out = runOk(process.execPath, ['use.mjs'], app, 60_000)
    expect(out).toContain(`resolved ${join(app, 'node_modules/edgeless/dist/node.js')}`)
    expect(out).toContain('fileLoader function')
    expect(out).toContain('esm reply PONG')
    expect(out).toContain('core reply PONG')
  }, 60_000)

  test('CommonJS: require("edgeless") spawns pong and gets PONG', () => {
    writeFileSync(join(app, 'use.cjs'), CJS_SCRIPT)
    const out = runOk(process.execPath, ['use.cjs'], app, 60_000)
    expect(out).toContain(`resolved ${join(app, 'node_modules/edgeless/dist/node.cjs')}`)
    expect(out).toContain(`memory ${join(app, 'node_modules/edgeless/dist/adapters/memory.cjs')}`)
    expect(out).toContain('deep ERR_PACKAGE_PATH_NOT_EXPORTED')
    expect(out).toContain('cjs reply PONG')
  }, 60_000)

  test('TypeScript (nodenext, strict, no skipLibCheck): correct ESM and CJS consumers type-check', () => {
    writeFileSync(join(app, 'check.ts'), TYPES_OK_ESM)
    writeFileSync(join(app, 'check.cts'), TYPES_OK_CJS)
    runOk(process.execPath, [TSC, ...TSC_ARGS, 'check.ts', 'check.cts'], app, 90_000)
  }, 90_000)

  test('TypeScript: a wrong payload type fails the check', () => {
    writeFileSync(join(app, 'bad.ts'), TYPES_BAD)
    const r = run(process.execPath, [TSC, ...TSC_ARGS, 'bad.ts'], app, 90_000)
    expect(r.error).toBeUndefined()
    expect(r.status).not.toBe(0)
    // It fails for that reason only (the package and its types were found, its own
    // declarations are clean): exactly one error, the number passed as a payload.
    const errors = (r.stdout + r.stderr).split('\n').filter((l) => /error TS\d+/.test(l))
    expect(errors).toEqual([expect.stringMatching(/^bad\.ts\(6,21\): error TS2345: Argument of type 'number' is not assignable/)])
  }, 90_000)
})

