/**
 * Building EDGELESS functions written in AssemblyScript (`edgeless build fn.ts -o fn.wasm`).
 * The compiler (the `assemblyscript` package) is imported only when a build runs.
 * @packageDocumentation
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GUEST_EXPORTS, HOST_IMPORTS } from '../wasm/abi'

/** Options of {@link buildAssemblyScript}. */
export interface AssemblyScriptBuildOptions {
  /** Optimise (`-O3`, shrink level 1). Default true. */
  optimize?: boolean
  /** Keep debug information (the function-name section, for readable trap stack traces). Default false. */
  debug?: boolean
}

/** What {@link buildAssemblyScript} wrote. */
export interface AssemblyScriptBuildResult {
  /** Size of the module in bytes. */
  bytes: number
  /** Absolute path of the module written. */
  out: string
}

interface AscOptions {
  common: string[]
  optimize: string[]
  debug: string[]
}

interface AscDiagnostic {
  code: number
  category: number
  message: string
  range: { start: number; end: number; source: { normalizedPath: string } } | null
}

/** Where `import "edgeless/assembly..."` resolves: a directory that exists nowhere on disk. */
const VIRTUAL_PACKAGES = join(sep === '/' ? '/' : resolve('/'), '__edgeless_asc_packages__')
const VIRTUAL_SDK = join(VIRTUAL_PACKAGES, 'edgeless')

/** The directory of this module (ESM or CommonJS build, or the TypeScript source under ts-jest). */
function moduleDir(): string | undefined {
  if (typeof __dirname === 'string') return __dirname
  try {
    return dirname(fileURLToPath(import.meta.url))
  } catch {
    return undefined
  }
}

let sdkRootCache: string | undefined

/** The package root: the directory holding `assembly/asc-options.json` (the AssemblyScript SDK). */
function sdkRoot(): string {
  if (sdkRootCache) return sdkRootCache
  const start = moduleDir()
  for (let dir = start; dir; ) {
    if (existsSync(join(dir, 'assembly', 'asc-options.json')) && existsSync(join(dir, 'assembly', 'exports.ts'))) {
      sdkRootCache = dir
      return dir
    }
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new Error(
    `buildAssemblyScript: cannot find the AssemblyScript SDK (the "assembly" folder of the edgeless package) above ${start ?? 'this module'}; reinstall edgeless.`,
  )
}

function ascOptions(root: string): AscOptions {
  return JSON.parse(readFileSync(join(root, 'assembly', 'asc-options.json'), 'utf8')) as AscOptions
}

/** 1-based line and column of `offset` in `text`. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { line, col: offset - lineStart + 1 }
}

const IMPORT_HINTS: Record<string, string> = {
  seed: 'Math.random() needs a seed from the host, which EDGELESS does not provide; derive pseudo-random numbers from your own generator (e.g. seeded from slf() or the payload)',
  trace: 'trace() logs through an env.trace import; use log()/logInfo() from "edgeless/assembly" instead',
  abort: 'abort was not routed to the SDK; import "edgeless/assembly" in the entry file',
  'Date.now': 'Date.now() needs an env.Date.now import; pass times in the payload instead',
}

function importHint(name: string): string {
  if (IMPORT_HINTS[name]) return ` (${IMPORT_HINTS[name]})`
  if (name.startsWith('console.')) return ' (console.* imports from the host; use log()/logInfo() from "edgeless/assembly")'
  return ' (a @external declaration or a standard-library function that needs the host)'
}

/**
 * Compile an AssemblyScript EDGELESS function (an entry file that registers an
 * `EdgeFunction` and re-exports `edgeless/assembly/exports`) into a guest module, with the
 * SDK's compiler flags (assembly/asc-options.json: incremental runtime, abort routed to a
 * log line plus a trap, -O3). `import "edgeless/assembly"` resolves to the SDK shipped with
 * this package unless the entry's own node_modules has one.
 *
 * Throws an Error carrying the compiler's diagnostics (`file:line:col: ERROR TSxxxx: ...`)
 * when the source does not compile, and an Error naming the offending import or export when
 * the result would not load as an EDGELESS function.
 *
 * @example
 * ```ts
 * const { bytes } = await buildAssemblyScript('fn/pong.ts', 'build/pong.wasm')
 * await rt.spawn({ name: 'pong', module: 'build/pong.wasm' })
 * ```
 */
export async function buildAssemblyScript(entry: string, out: string, options: AssemblyScriptBuildOptions = {}): Promise<AssemblyScriptBuildResult> {
  const entryPath = resolve(entry)
  const outPath = resolve(out)
  if (!existsSync(entryPath)) throw new Error(`buildAssemblyScript: ${entry} does not exist.`)
  const root = sdkRoot()
  const flags = ascOptions(root)

  let asc: typeof import('assemblyscript/asc')
  try {
    asc = await import('assemblyscript/asc')
  } catch (e) {
    throw new Error(
      `buildAssemblyScript: the AssemblyScript compiler is not installed (${(e as Error).message}). Install it next to edgeless: npm install --save-dev assemblyscript`,
      { cause: e },
    )
  }

  const baseDir = dirname(entryPath)
  const sdkDir = join(root, 'assembly')
  const argv = [
    basename(entryPath),
    '--outFile',
    'out.wasm',
    '--baseDir',
    baseDir,
    '--path',
    VIRTUAL_PACKAGES,
    ...flags.common,
    ...(options.optimize === false ? [] : flags.optimize),
    ...(options.debug ? flags.debug : []),
  ]

  /** The file behind an internal source path; undefined for the compiler's own library. */
  const realPath = (normalized: string): string | undefined => {
    if (normalized.startsWith('~lib/edgeless/')) return join(root, normalized.slice('~lib/edgeless/'.length))
    if (normalized.startsWith('~lib/')) return undefined
    return resolve(baseDir, normalized)
  }
  const texts = new Map<string, string>()
  const sourceText = (file: string): string => {
    let t = texts.get(file)
    if (t === undefined) {
      try {
        t = readFileSync(file, 'utf8')
      } catch {
        t = ''
      }
      texts.set(file, t)
    }
    return t
  }

  let binary: Uint8Array | undefined
  const diagnostics: string[] = []
  const stderr = asc.createMemoryStream()
  const stdout = asc.createMemoryStream()
  const result = await asc.main(argv, {
    stdout,
    stderr,
    readFile: async (filename, dir) => {
      const path = resolve(dir, filename)
      // "edgeless/assembly[/x]" resolves to <virtual>/edgeless/assembly[/x](.ts|/index.ts).
      const real = path.startsWith(VIRTUAL_SDK + sep) ? join(root, relative(VIRTUAL_SDK, path)) : path
      if (real !== path && !real.startsWith(sdkDir + sep)) return null
      try {
        return await readFile(real, 'utf8')
      } catch {
        return null
      }
    },
    writeFile: (filename, contents) => {
      if (filename.endsWith('.wasm') && typeof contents !== 'string') binary = contents
    },
    listFiles: () => [],
    reportDiagnostic: (d) => {
      const diag = d as unknown as AscDiagnostic
      const kind = ['PEDANTIC', 'INFO', 'WARNING', 'ERROR'][diag.category] ?? 'ERROR'
      if (kind !== 'ERROR') return
      let where = ''
      if (diag.range) {
        const file = realPath(diag.range.source.normalizedPath)
        const at = file ? lineCol(sourceText(file), diag.range.start) : undefined
        where = at ? `${file}:${at.line}:${at.col}: ` : `${file ?? diag.range.source.normalizedPath}: `
      }
      diagnostics.push(`${where}${kind} TS${diag.code}: ${diag.message}`)
    },
  })

  if (result.error || !binary) {
    const detail = diagnostics.length ? diagnostics.join('\n') : stderr.toString().trim() || String(result.error?.message ?? 'no output')
    throw new Error(`AssemblyScript compilation of ${entry} failed:\n${detail}`)
  }

  // The host accepts only the ABI's imports and needs its exports: say so now, not at load time.
  const mod = new WebAssembly.Module(binary as Uint8Array<ArrayBuffer>)
  const badImports = WebAssembly.Module.imports(mod).filter((i) => !(i.module === 'env' && i.kind === 'function' && i.name in HOST_IMPORTS))
  if (badImports.length) {
    const list = badImports.map((i) => `${i.module}.${i.name}${importHint(i.name)}`).join('; ')
    throw new Error(`${entry} compiled, but the module imports what the EDGELESS host does not provide: ${list}.`)
  }
  const exported = new Set(WebAssembly.Module.exports(mod).map((e) => e.name))
  const missing = ['memory', ...Object.keys(GUEST_EXPORTS).filter((n) => !GUEST_EXPORTS[n]!.optional)].filter((n) => !exported.has(n))
  if (missing.length) {
    throw new Error(
      `${entry} compiled, but the module lacks the EDGELESS exports ${missing.join(', ')}. Add \`export * from "edgeless/assembly/exports"\` to the entry file.`,
    )
  }

  await mkdir(dirname(outPath), { recursive: true })
  await writeFile(outPath, binary)
  return { bytes: binary.length, out: isAbsolute(outPath) ? outPath : resolve(outPath) }
}
