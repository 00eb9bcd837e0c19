// The package as published: the exports map agrees with the build, resolves each subpath
// as Node, browsers and type checkers would (a "browser" condition for the core, Node-only
// adapters behind "node"), what a browser resolves pulls in no Node builtins, and the
// packed tarball installs and works from a scratch project (ESM, CommonJS, TypeScript
// consumers, and a browser bundle made by esbuild). Runs against dist/, so build first
// (`npm test` does).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string
  main?: string
  module?: string
  types?: string
  typesVersions?: Record<string, Record<string, string[]>>
  exports: Record<string, unknown>
  dependencies?: Record<string, string>
  bin?: Record<string, string>
  browser?: string
  files: string[]
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

/** The public entries tsup builds (tsup.config.ts), each in every published format. */
const ENTRIES = ['index', 'node', 'adapters/memory', 'adapters/indexeddb', 'adapters/file', 'adapters/redis', 'adapters/sqlite', 'testing', 'testing/jest']
/** Entries that run anywhere: what a browser may load. */
const NEUTRAL = ['adapters/memory', 'adapters/indexeddb']
/** Subpaths that need Node: their code sits behind the `node` condition only. */
const NODE_ONLY = ['./adapters/file', './adapters/redis', './adapters/sqlite']
/** Subpaths exporting sources (the AssemblyScript SDK, compiled by asc from .ts), not built files. */
const SOURCE_EXPORTS = ['./assembly', './assembly/*']
// Built entries outside the exports map: the CLI (package.json bin) and the worker scripts (isolation: 'worker', asyncify).
const BIN_ENTRIES = ['cli', 'worker-entry', 'asyncify-worker']
const FORMATS = ['.js', '.cjs', '.d.ts', '.d.cts']

/** The dist files that are published entries (not chunks, not source maps). */
function builtEntryFiles(): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      // Shared chunks are not entries: chunk-<HASH>.js/.cjs (code), <module>-<8-char hash>.d.ts/.d.cts (declarations).
      else if (!/^chunk-\w+\.c?js$/.test(e.name) && !/-[\w-]{8}\.d\.c?ts$/.test(e.name) && !e.name.endsWith('.map'))
        out.push(relative(root, p).split(sep).join('/'))
    }
  }
  walk(dist)
  return out.sort()
}

interface Target {
  subpath: string
  conditions: string[]
  file: string
}

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

/** The files a target stands for: itself, or for a pattern (`*`) every file it matches. */
function targetFiles(file: string, within: string[] | undefined = undefined): string[] {
  const f = norm(file)
  if (!f.includes('*')) return [f]
  const [before, after] = f.split('*') as [string, string]
  const candidates =
    within ??
    (() => {
      const dir = dirname(before + 'x')
      return existsSync(join(root, dir)) ? readdirSync(join(root, dir)).map((n) => `${dir}/${n}`) : []
    })()
  return candidates.filter(
    (c) =>
      c.startsWith(before) && c.endsWith(after) && c.length > before.length + after.length && !c.slice(before.length, c.length - after.length).includes('/'),
  )
}

/**
 * Node's exports resolution (PACKAGE_EXPORTS_RESOLVE, without patterns) for `subpath` under
 * `conditions` (`default` always matches): the target, or undefined when not exported under
 * those conditions. Bundlers and TypeScript implement the same algorithm.
 */
function resolveExport(subpath: string, conditions: string[]): string | undefined {
  const walk = (node: unknown): string | undefined => {
    if (typeof node === 'string') return node
    if (Array.isArray(node)) {
      for (const n of node) {
        const r = walk(n)
        if (r !== undefined) return r
      }
      return undefined
    }
    if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'default' || conditions.includes(k)) {
          const r = walk(v)
          if (r !== undefined) return r
        }
      }
    }
    return undefined
  }
  const node = pkg.exports[subpath]
  return node === undefined ? undefined : walk(node)
}

/** The exports subpath of a built entry (`index` and `node` are the two sides of `.`). */
const subpathOf = (entry: string) => (entry === 'index' || entry === 'node' ? '.' : `./${entry}`)

beforeAll(() => {
  if (!existsSync(join(dist, 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
})

describe('exports map and build agree', () => {
  test('every target of the exports map exists', () => {
    const targets = exportTargets()
    expect(targets.length).toBeGreaterThan(0)
    // A pattern target (./assembly/*) must match files, and exactly the kind it names.
    const missing = targets
      .filter((t) => targetFiles(t.file).length === 0 || !targetFiles(t.file).every((f) => existsSync(join(root, f))))
      .map((t) => `${t.subpath} [${t.conditions.join('.')}] -> ${t.file}`)
    expect(missing).toEqual([])
    for (const t of targets) expect(t.file.startsWith('./')).toBe(true)
    // Every subpath of the map is a built entry, a source export or package.json.
    const subpaths = Object.keys(pkg.exports)
    expect(subpaths.sort()).toEqual([...new Set(ENTRIES.map(subpathOf)), ...SOURCE_EXPORTS, './package.json'].sort())
  })

  test('the AssemblyScript SDK is exported as sources and shipped', () => {
    expect(pkg.exports['./assembly']).toBe('./assembly/index.ts')
    expect(pkg.exports['./assembly/*']).toBe('./assembly/*.ts')
    expect(targetFiles('./assembly/*.ts')).toEqual(expect.arrayContaining(['assembly/index.ts', 'assembly/exports.ts']))
    expect(pkg.files).toContain('assembly')
  })

  test('the legacy fields (main, module, types, browser) point at existing files', () => {
    expect(pkg.browser).toBe('./dist/index.js')
    for (const field of ['main', 'module', 'types', 'browser'] as const) {
      const f = pkg[field]
      if (f !== undefined) expect({ field, exists: existsSync(join(root, f)) }).toEqual({ field, exists: true })
    }
  })

  // TypeScript without a tsconfig (ts-jest's default: node10 resolution) ignores the exports
  // map; typesVersions must send every subpath to the declarations its ESM import gets.
  test('typesVersions maps every subpath with declarations to the same file as the exports map', () => {
    const map = pkg.typesVersions?.['*'] ?? {}
    const viaTypesVersions = (sub: string): string | undefined => {
      for (const [pattern, [target]] of Object.entries(map)) {
        const m = new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace('*', '(.+)')}$`).exec(sub)
        if (m && target) return norm(target.replace('*', m[1] ?? ''))
      }
      return undefined
    }
    const wanted = exportTargets().filter((t) => t.subpath !== '.' && t.conditions.at(-1) === 'types' && t.conditions.includes('import'))
    expect(wanted.length).toBeGreaterThan(5)
    for (const t of wanted) {
      const got = viaTypesVersions(t.subpath.slice(2))
      expect({ subpath: t.subpath, types: got }).toEqual({ subpath: t.subpath, types: norm(t.file) })
      expect(existsSync(join(root, got!))).toBe(true)
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
      if (SOURCE_EXPORTS.includes(t.subpath)) {
        // Sources for asc: a plain string target, no conditions and no `types` (asc reads .ts).
        if (t.conditions.length || !/^\.\/assembly\/[^/]*\.ts$/.test(t.file)) bad.push(`${t.subpath} [${t.conditions.join('.')}] -> ${t.file}`)
        continue
      }
      if (!t.conditions.includes('import') && !t.conditions.includes('require'))
        bad.push(`${t.subpath} [${t.conditions.join('.')}]: neither import nor require`)
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
    // ...and the map references nothing outside them (besides package.json and the SDK sources).
    const sources = new Set(
      exportTargets()
        .filter((t) => SOURCE_EXPORTS.includes(t.subpath))
        .map((t) => norm(t.file)),
    )
    expect([...referenced].filter((f) => f !== 'package.json' && !sources.has(f) && !expected.includes(f))).toEqual([])
  })

  test('the optional drivers are optional peers, and none is bundled', () => {
    for (const dep of ['ioredis', 'better-sqlite3']) {
      expect({ dep, peer: pkg.peerDependencies?.[dep] !== undefined, optional: pkg.peerDependenciesMeta?.[dep]?.optional }).toEqual({
        dep,
        peer: true,
        optional: true,
      })
    }
    // The adapters load them lazily, as bare imports (so whatever the user installed is used).
    for (const [entry, dep] of [
      ['adapters/redis', 'ioredis'],
      ['adapters/sqlite', 'better-sqlite3'],
    ] as const) {
      for (const ext of ['.js', '.cjs']) {
        const { files, bare } = closure([`dist/${entry}${ext}`])
        expect({ entry, ext, imports: [...bare.values()].flat() }).toEqual({ entry, ext, imports: expect.arrayContaining([dep]) })
        expect(files.every((f) => f.startsWith('dist/'))).toBe(true)
      }
    }
  })
})

describe('the exports map resolves per environment', () => {
  const imp = (subpath: string, ...conditions: string[]) => resolveExport(subpath, [...conditions, 'import'])
  const req = (subpath: string, ...conditions: string[]) => resolveExport(subpath, [...conditions, 'require'])

  test('"." is the Node entry in Node, the platform-neutral core in browsers and elsewhere', () => {
    expect(imp('.', 'node')).toBe('./dist/node.js')
    expect(req('.', 'node')).toBe('./dist/node.cjs')
    expect(imp('.', 'browser')).toBe('./dist/index.js')
    expect(req('.', 'browser')).toBe('./dist/index.cjs')
    // Browser first: a tool that sets both (an Electron renderer bundle, jsdom) gets the core,
    // which works in both; the Node entry would not work in a page.
    expect(imp('.', 'browser', 'node')).toBe('./dist/index.js')
    expect(imp('.')).toBe('./dist/index.js') // tools that set neither
    expect(imp('.', 'browser', 'types')).toBe('./dist/index.d.ts')
    expect(req('.', 'node', 'types')).toBe('./dist/node.d.cts')
    expect(Object.keys(pkg.exports['.'] as object)).toEqual(['browser', 'node', 'default'])
  })

  test('every built subpath resolves in Node, ESM and CommonJS, with declarations', () => {
    for (const entry of ENTRIES.filter((e) => e !== 'index')) {
      const sp = subpathOf(entry)
      const file = entry === 'index' ? 'node' : entry
      expect({ sp, esm: imp(sp, 'node'), cjs: req(sp, 'node'), dts: imp(sp, 'node', 'types'), dcts: req(sp, 'node', 'types') }).toEqual({
        sp,
        esm: `./dist/${file}.js`,
        cjs: `./dist/${file}.cjs`,
        dts: `./dist/${file}.d.ts`,
        dcts: `./dist/${file}.d.cts`,
      })
    }
  })

  test('the neutral adapters resolve in browsers; the Node-only ones do not (a bundler fails on them)', () => {
    for (const entry of NEUTRAL)
      expect({ entry, js: imp(`./${entry}`, 'browser'), cjs: req(`./${entry}`, 'browser') }).toEqual({
        entry,
        js: `./dist/${entry}.js`,
        cjs: `./dist/${entry}.cjs`,
      })
    for (const sp of NODE_ONLY) {
      expect({ sp, browser: imp(sp, 'browser'), other: imp(sp), cjs: req(sp, 'browser') }).toEqual({ sp, browser: undefined, other: undefined, cjs: undefined })
      // A type checker without the node condition (TypeScript's "bundler" mode) still finds the declarations.
      expect({ sp, dts: imp(sp, 'types'), dcts: req(sp, 'types') }).toEqual({ sp, dts: `./dist/${sp.slice(2)}.d.ts`, dcts: `./dist/${sp.slice(2)}.d.cts` })
    }
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

/** Source files reachable from `entries` through relative imports (with or without `.ts`). */
function sourceClosure(entries: string[]): string[] {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const s of specifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!s.startsWith('.')) continue
      const base = relative(root, resolve(root, dirname(file), s))
        .split(sep)
        .join('/')
      const found = [base, `${base}.ts`, `${base}/index.ts`, base.replace(/\.js$/, '.ts')].find((c) => c.endsWith('.ts') && existsSync(join(root, c)))
      if (!found) throw new Error(`${file} imports ${s}, which is not a source file`)
      visit(found)
    }
  }
  for (const e of entries) visit(e)
  return [...seen].sort()
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

describe('what a browser loads has no Node builtins', () => {
  /** The browser closure: ".", adapters/memory and adapters/indexeddb, resolved with the browser condition. */
  const BROWSER = ['.', ...NEUTRAL.map((e) => `./${e}`)]
    .flatMap((sp) => [resolveExport(sp, ['browser', 'import']), resolveExport(sp, ['browser', 'require'])])
    .map((f) => norm(f!))

  test('dist: the core and the neutral adapters as a browser resolves them, with every chunk they load', () => {
    expect(BROWSER).toEqual([
      'dist/index.js',
      'dist/index.cjs',
      'dist/adapters/memory.js',
      'dist/adapters/memory.cjs',
      'dist/adapters/indexeddb.js',
      'dist/adapters/indexeddb.cjs',
    ])
    const { files, bare } = closure(BROWSER)
    expect(files).not.toContain('dist/node.js')
    expect(files).not.toContain('dist/node.cjs')
    // The scan really followed the chunks (tsup splits the code into shared chunks).
    expect(files.some((f) => /chunk-.*\.js$/.test(f))).toBe(true)
    expect(files.some((f) => /chunk-.*\.cjs$/.test(f))).toBe(true)
    expect(builtinImports(files, bare)).toEqual([])
    // Whatever bare packages they load are declared dependencies (shipped with the package).
    const deps = new Set(Object.keys(pkg.dependencies ?? {}))
    const undeclared = [...bare.entries()].flatMap(([f, ss]) =>
      ss.filter((s) => !deps.has(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!)).map((s) => `${f}: ${s}`),
    )
    expect(undeclared).toEqual([])
  })

  test('dist: the test kit (edgeless/testing, edgeless/testing/jest) loads no Node builtin either', () => {
    const { files, bare } = closure(['dist/testing.js', 'dist/testing.cjs', 'dist/testing/jest.js', 'dist/testing/jest.cjs'])
    expect(builtinImports(files, bare)).toEqual([])
  })

  test("the scan does find the Node entry's builtins (control)", () => {
    const { files, bare } = closure(['dist/node.js', 'dist/node.cjs'])
    // (tsup strips the node: prefix unless removeNodeProtocol is false, so accept both.)
    const hits = builtinImports(files, bare).map((h) => h.replace(': node:', ': '))
    for (const ext of ['.js', '.cjs']) {
      const found = hits.filter((h) => h.split(':')[0]!.endsWith(ext)).map((h) => h.split(': ')[1])
      expect(found).toEqual(expect.arrayContaining(['fs/promises', 'url', 'path', 'http']))
    }
  })

  test('sources: lib/ (outside lib/node/) and adapters/memory.ts, indexeddb.ts', () => {
    const files: string[] = []
    const walk = (dir: string) => {
      for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
        const p = `${dir}/${e.name}`
        if (e.isDirectory()) {
          if (p !== 'lib/node') walk(p)
        } else if (e.name.endsWith('.ts')) files.push(p)
      }
    }
    walk('lib')
    files.push('adapters/memory.ts', 'adapters/indexeddb.ts')
    // The core never reaches into lib/node/ (nor the Node-only adapters), and lib/testing/
    // (the test kit, platform neutral too) only for itself.
    const reached = sourceClosure(['lib/index.ts', 'adapters/memory.ts', 'adapters/indexeddb.ts'])
    expect(reached.filter((f) => !files.includes(f) || f.startsWith('lib/testing/'))).toEqual([])
    expect(files).toEqual(expect.arrayContaining(['lib/index.ts', 'lib/runtime/runtime.ts']))
    const hits: string[] = []
    for (const f of files) {
      const code = readFileSync(join(root, f), 'utf8')
      for (const s of specifiers(code)) if (isBuiltin(s)) hits.push(`${f}: ${s}`)
      if (NODE_PREFIX.test(code)) hits.push(`${f}: node: import`)
    }
    expect([...new Set(hits)]).toEqual([])
    // Control: the same scan flags the Node entry.
    expect(specifiers(readFileSync(join(root, 'lib/node/index.ts'), 'utf8')).filter(isBuiltin)).toEqual([
      'node:dns/promises',
      'node:fs/promises',
      'node:os',
      'node:path',
      'node:url',
    ])
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

// Every subpath resolves in Node; the Node-only adapters load, the IndexedDB one loads and
// says plainly that Node has no IndexedDB on first use.
const { fileStore } = await import('edgeless/adapters/file')
const { indexedDbStore } = await import('edgeless/adapters/indexeddb')
console.log('fileStore ' + typeof fileStore)
const idb = indexedDbStore()
console.log('indexeddb ' + await idb.get('x').then(() => 'resolved', (e) => e.message))
for (const sp of ['edgeless/adapters/redis', 'edgeless/adapters/sqlite', 'edgeless/testing', 'edgeless/testing/jest', 'edgeless/assembly', 'edgeless/assembly/exports']) {
  console.log('resolve ' + sp + ' ' + fileURLToPath(import.meta.resolve(sp)))
}
const { redisStore } = await import('edgeless/adapters/redis')
console.log('redisStore ' + typeof redisStore)
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
for (const sp of ['edgeless/adapters/file', 'edgeless/adapters/indexeddb', 'edgeless/adapters/redis', 'edgeless/adapters/sqlite', 'edgeless/testing', 'edgeless/testing/jest']) {
  console.log('resolve ' + sp + ' ' + require.resolve(sp))
}
console.log('sqliteStore ' + typeof require('edgeless/adapters/sqlite').sqliteStore)

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

// A browser app type-checked the way bundler setups do (TypeScript's "bundler" resolution:
// no "node" condition, so the core's declarations), using the IndexedDB store; the file
// store's declarations are found too (its code is Node-only, which the bundle step enforces).
const TYPES_OK_BUNDLER = `
import { Runtime, type CallResult, type StateStore } from 'edgeless'
import { indexedDbStore, type IndexedDbStore } from 'edgeless/adapters/indexeddb'
import type { FileStoreOptions } from 'edgeless/adapters/file'

const store: IndexedDbStore = indexedDbStore({ dbName: 'app', storeName: 'state', durability: 'relaxed' })
const asState: StateStore = store
const rt = new Runtime({ consoleLog: false, stateStore: asState })
export async function run(): Promise<CallResult> {
  const wf = await rt.startWorkflow(new URL('./workflow.json', 'https://example.com/app/'))
  const v: number | { conflict: number } = await store.setIfVersion('k', new Uint8Array([1]), 0)
  console.log(v, wf.name)
  return rt.call(wf.get('ponger')!, 'hi')
}
export const options: FileStoreOptions = { dir: './state' }
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

  test('the tarball holds every exports target and no sources or tests (but the AssemblyScript SDK)', () => {
    const files = new Set(packedFiles)
    const missing = exportTargets()
      .flatMap((t) => (t.file.includes('*') ? [t.file] : [norm(t.file)]))
      .filter((f) => (f.includes('*') ? targetFiles(f, packedFiles).length === 0 : !files.has(f)))
    expect(missing).toEqual([])
    expect(packedFiles.filter((f) => /^(lib|adapters|__tests__|fixtures|bench|examples|docs)\//.test(f))).toEqual([])
    // The SDK as asc and `edgeless build` need it: every source, and the compiler flags.
    const sdk = readdirSync(join(root, 'assembly'))
      .filter((f) => /\.(ts|json)$/.test(f))
      .map((f) => `assembly/${f}`)
    expect(sdk).toEqual(expect.arrayContaining(['assembly/index.ts', 'assembly/exports.ts', 'assembly/asc-options.json']))
    expect(sdk.filter((f) => !files.has(f))).toEqual([])
  })

  test('installed as a real copy with its dependencies', () => {
    const installed = join(app, 'node_modules/edgeless')
    expect(existsSync(join(installed, 'package.json'))).toBe(true)
    expect(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).name).toBe(pkg.name)
    for (const dep of Object.keys(pkg.dependencies ?? {}))
      expect({ dep, installed: existsSync(join(app, 'node_modules', dep, 'package.json')) }).toEqual({ dep, installed: true })
  })

  test('ESM: import from "edgeless" spawns pong and gets PONG', () => {
    writeFileSync(join(app, 'use.mjs'), ESM_SCRIPT)
    const out = runOk(process.execPath, ['use.mjs'], app, 60_000)
    expect(out).toContain(`resolved ${join(app, 'node_modules/edgeless/dist/node.js')}`)
    expect(out).toContain('fileLoader function')
    expect(out).toContain('esm reply PONG')
    expect(out).toContain('core reply PONG')
    expect(out).toContain('fileStore function')
    expect(out).toContain('redisStore function')
    expect(out).toMatch(/^indexeddb indexedDbStore\("edgeless"\/"state"\): IndexedDB is not available here/m)
    const installed = join(app, 'node_modules/edgeless')
    for (const [sp, file] of [
      ['adapters/redis', 'dist/adapters/redis.js'],
      ['adapters/sqlite', 'dist/adapters/sqlite.js'],
      ['testing', 'dist/testing.js'],
      ['testing/jest', 'dist/testing/jest.js'],
      ['assembly', 'assembly/index.ts'],
      ['assembly/exports', 'assembly/exports.ts'],
    ] as const) {
      expect(out).toContain(`resolve edgeless/${sp} ${join(installed, file)}`)
    }
  }, 60_000)

  test('CommonJS: require("edgeless") spawns pong and gets PONG', () => {
    writeFileSync(join(app, 'use.cjs'), CJS_SCRIPT)
    const out = runOk(process.execPath, ['use.cjs'], app, 60_000)
    expect(out).toContain(`resolved ${join(app, 'node_modules/edgeless/dist/node.cjs')}`)
    expect(out).toContain(`memory ${join(app, 'node_modules/edgeless/dist/adapters/memory.cjs')}`)
    expect(out).toContain('deep ERR_PACKAGE_PATH_NOT_EXPORTED')
    expect(out).toContain('cjs reply PONG')
    const installed = join(app, 'node_modules/edgeless')
    for (const sp of ['adapters/file', 'adapters/indexeddb', 'adapters/redis', 'adapters/sqlite', 'testing', 'testing/jest']) {
      expect(out).toContain(`resolve edgeless/${sp} ${join(installed, 'dist', `${sp}.cjs`)}`)
    }
    expect(out).toContain('sqliteStore function')
  }, 60_000)

  test('a browser bundle (esbuild, platform browser) takes the core, and refuses the Node-only adapters', async () => {
    const bundle = (contents: string, platform: 'browser' | 'node') =>
      esbuild.build({
        absWorkingDir: app,
        stdin: { contents, resolveDir: app, loader: 'js' },
        bundle: true,
        format: 'esm',
        platform,
        splitting: true,
        outdir: join(app, 'out'),
        write: false,
        metafile: true,
        logLevel: 'silent',
        external: ['node:*'], // binaryen's own guarded Node code path
      })
    const page = await bundle(
      `import { Runtime } from 'edgeless'\nimport { indexedDbStore } from 'edgeless/adapters/indexeddb'\nimport { memoryStore } from 'edgeless/adapters/memory'\nconsole.log(Runtime, indexedDbStore, memoryStore)`,
      'browser',
    )
    const inputs = Object.keys(page.metafile.inputs)
    const ours = inputs.filter((i) => i.startsWith('node_modules/edgeless/')).map((i) => i.slice('node_modules/edgeless/'.length))
    expect(ours).toEqual(expect.arrayContaining(['dist/index.js', 'dist/adapters/indexeddb.js', 'dist/adapters/memory.js']))
    expect(ours.filter((f) => !/^dist\/(index|adapters\/(indexeddb|memory)|chunk-\w+)\.js$/.test(f))).toEqual([])
    // Nothing in the bundle imports a Node builtin but binaryen's guarded `import('node:module')`.
    const nodeImports = Object.entries(page.metafile.inputs).flatMap(([f, i]) => i.imports.filter((x) => x.external).map((x) => `${f}: ${x.path}`))
    expect(nodeImports).toEqual([expect.stringMatching(/^node_modules\/binaryen\/index\.js: node:module$/)])
    // binaryen is its own chunk, loaded only when a module needs asyncify.
    const lazy = Object.keys(page.metafile.outputs).filter((o) => /binaryen-\w+\.js$/.test(o))
    expect(lazy).toHaveLength(1)

    for (const sp of NODE_ONLY) {
      const failed = await bundle(`import * as m from 'edgeless/${sp.slice(2)}'\nconsole.log(m)`, 'browser').then(
        () => undefined,
        (e: esbuild.BuildFailure) => e.errors.flatMap((m) => [m.text, ...m.notes.map((n) => n.text)]).join('\n'),
      )
      expect({ sp, failed }).toEqual({ sp, failed: expect.stringMatching(/"\.\/adapters\/\w+" is not currently exported by package "edgeless"/) })
    }
    // The same bundler targeting Node gets the Node entry and the Node-only adapters.
    const server = await bundle(
      `import { fileLoader } from 'edgeless'\nimport { fileStore } from 'edgeless/adapters/file'\nconsole.log(fileLoader, fileStore)`,
      'node',
    )
    expect(Object.keys(server.metafile.inputs)).toEqual(
      expect.arrayContaining(['node_modules/edgeless/dist/node.js', 'node_modules/edgeless/dist/adapters/file.js']),
    )
  }, 60_000)

  test('TypeScript (nodenext, strict, no skipLibCheck): correct ESM and CJS consumers type-check', () => {
    writeFileSync(join(app, 'check.ts'), TYPES_OK_ESM)
    writeFileSync(join(app, 'check.cts'), TYPES_OK_CJS)
    runOk(process.execPath, [TSC, ...TSC_ARGS, 'check.ts', 'check.cts'], app, 90_000)
  }, 90_000)

  test('TypeScript ("bundler" resolution, DOM lib, strict, no skipLibCheck): a browser consumer type-checks', () => {
    mkdirSync(join(app, 'web'), { recursive: true })
    writeFileSync(join(app, 'web/app.ts'), TYPES_OK_BUNDLER)
    runOk(
      process.execPath,
      [TSC, '--noEmit', '--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022', '--lib', 'es2022,dom', '--strict', 'web/app.ts'],
      app,
      90_000,
    )
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
