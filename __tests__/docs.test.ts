// The documentation is checked like code: README.md and docs/*.md link only to files that
// exist (and to headings that exist), never outside the repository; their generated sections
// (benchmark table, source layout) match what the generators would write now; and every
// ```ts / ```js example in them runs, as a reader would run it, against the built package.
//
// How an example runs: it is transpiled by esbuild (TypeScript → ESM, nothing bundled) into a
// scratch folder that looks like a reader's project — `node_modules/edgeless` is this
// repository (so `import ... from 'edgeless'` resolves through package.json's exports map to
// dist/, as for a user), and the files examples name are there (`./pong.wasm`, `./ping.wasm`,
// `./tally.wasm`, `examples/<name>/workflow.json` with the fixtures they point at). Each runs
// in its own `node` process with a time limit and must exit 0.
//
// Markers, an HTML comment on the line before the fence:
//   <!-- snippet: preamble=NAME -->   the example is a fragment; PREAMBLES[NAME] runs first
//                                     (and its cleanup after). Say in the page what it sets up.
//   <!-- snippet: jest -->            the example is a jest test file: it runs under jest.
//   <!-- snippet: no-run reason="..." -->  not run (a web page, Electron, a package we do not
//                                     depend on); counted and printed. Keep these few.
// Other fences (sh, json, text, rust, ...) are not run.
//
// Runs against dist/, so build first (`npm test` does).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import * as esbuild from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
/** The pages checked: the README and every page of docs/. */
const PAGES = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
]
/**
 * Pages that another branch adds (linked from the README already). Remove an entry once the
 * page is merged: from then on a link to it is checked like any other.
 */
const PENDING_PAGES = new Set<string>([])
/** How long one example may run. */
const SNIPPET_TIMEOUT_MS = 60_000

/**
 * Hidden set-up for fragments, by name. Imports use a private name so they cannot clash with
 * the example's own imports.
 */
const PREAMBLES: Record<string, { before: string; after: string }> = {
  // `rt`: a fresh runtime, shut down after the example.
  runtime: {
    before: `import * as __edgeless from 'edgeless'\nconst rt = new __edgeless.Runtime()\n`,
    after: `\nawait rt.shutdown()\n`,
  },
  // `rt` and `ponger`: upstream's pong (answers PONG) spawned from ./pong.wasm.
  pong: {
    before: `import * as __edgeless from 'edgeless'\nconst rt = new __edgeless.Runtime()\nconst ponger = await rt.spawn({ name: 'ponger', module: './pong.wasm' })\n`,
    after: `\nawait rt.shutdown()\n`,
  },
}

const read = (page: string) => readFileSync(join(root, page), 'utf8')

// ---- markdown ----------------------------------------------------------------------------

interface Snippet {
  page: string
  line: number
  lang: string
  code: string
  marker: string | undefined
}

/** Fenced code blocks of a page, with the `<!-- snippet: ... -->` marker on the line before, if any. */
function fences(page: string): Snippet[] {
  const lines = read(page).split('\n')
  const out: Snippet[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!)
    if (!open) continue
    const indent = open[1]!
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !new RegExp(`^${indent}\`\`\`\\s*$`).test(lines[j]!); j++)
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!)
    if (j >= lines.length) throw new Error(`${page}:${i + 1}: a code fence is never closed`)
    let k = i - 1
    while (k >= 0 && lines[k]!.trim() === '') k--
    const m = k >= 0 ? /^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$/.exec(lines[k]!) : null
    out.push({ page, line: i + 1, lang: open[2]!.toLowerCase(), code: body.join('\n'), marker: m?.[1] })
    i = j
  }
  return out
}

/** The page's text outside code (fences and inline code), where links live. */
function prose(text: string): string {
  return text.replace(/^([ \t]*)```[\s\S]*?^\1```[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's anchor for each heading of a page: lower case, punctuation dropped, spaces to dashes, -1, -2 for repeats (inline code keeps its text). */
function headingAnchors(page: string): Set<string> {
  const text = read(page).replace(/^([ \t]*)```[\s\S]*?^\1```[ \t]*$/gm, '')
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const m of text.matchAll(/^#{1,6}[ \t]+(.+?)\s*#*\s*$/gm)) {
    const slug = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-')
    const n = seen.get(slug) ?? 0
    seen.set(slug, n + 1)
    out.add(n === 0 ? slug : `${slug}-${n}`)
  }
  return out
}

interface Link {
  page: string
  target: string
}

function links(page: string): Link[] {
  const text = prose(read(page))
  const out: Link[] = []
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ page, target: m[1]! })
  for (const m of text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)) out.push({ page, target: m[1]! })
  for (const m of text.matchAll(/<(?:img|a)\s[^>]*(?:src|href)="([^"]+)"/g)) out.push({ page, target: m[1]! })
  return out
}

/** What is wrong with one link, or undefined. */
function checkLink({ page, target }: Link): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
    return /^(https?|mailto):/i.test(target)
      ? undefined
      : `${page}: link "${target}" uses a scheme other than http(s) or mailto; link a file of the repository or a public URL`
  }
  const [path, anchor] = target.split('#', 2) as [string, string | undefined]
  const file = path === '' ? join(root, page) : resolve(root, dirname(page), decodeURIComponent(path))
  const rel = relative(root, file)
  if (rel.startsWith('..') || rel.split(sep).includes('..'))
    return `${page}: link "${target}" leaves the repository (${file}); docs may link only files of the repository or public URLs`
  const relPosix = rel.split(sep).join('/')
  if (PENDING_PAGES.has(relPosix)) return undefined
  if (!existsSync(file)) return `${page}: link "${target}" points at ${relPosix}, which does not exist`
  if (anchor && file.endsWith('.md')) {
    const have = headingAnchors(relPosix)
    if (!have.has(anchor)) return `${page}: link "${target}": ${relPosix} has no heading with anchor #${anchor} (it has: ${[...have].join(', ')})`
  }
  return undefined
}

// ---- links ---------------------------------------------------------------------------------

describe('links', () => {
  test('every relative link in README.md and docs/*.md resolves to a file (and heading) of the repository', () => {
    const all = PAGES.flatMap(links)
    expect(all.length).toBeGreaterThan(50) // the scan really finds the links
    const problems = all.map(checkLink).filter((p): p is string => p !== undefined)
    expect(problems).toEqual([])
  })

  test('no page mentions ../shared, which is not part of the repository', () => {
    const offenders = PAGES.filter((p) => /\.\.\/shared\b|\/work\/shared/.test(read(p)))
    expect(offenders).toEqual([])
  })

  test('the link check catches what it should', () => {
    expect(checkLink({ page: 'README.md', target: '../shared/spec/guest-abi.md' })).toMatch(/leaves the repository/)
    expect(checkLink({ page: 'docs/api.md', target: 'examples/ping-pong/main.mjs' })).toMatch(/does not exist/)
    expect(checkLink({ page: 'docs/api.md', target: '../examples/ping-pong/main.mjs' })).toBeUndefined()
    expect(checkLink({ page: 'README.md', target: 'docs/api.md#errors' })).toBeUndefined()
    expect(checkLink({ page: 'README.md', target: 'docs/api.md#no-such-heading' })).toMatch(/no heading/)
    expect(checkLink({ page: 'README.md', target: 'file:///etc/passwd' })).toMatch(/scheme/)
    expect(headingAnchors('README.md').has('using-it')).toBe(true)
    expect(headingAnchors('docs/browser-electron.md').has('cross-origin-isolation-coopcoep')).toBe(true)
  })

  test('every repository path named in inline code (`lib/...`, `examples/...`) exists', () => {
    // Pages name source files without linking them; a moved file must not leave them stale.
    const named = PAGES.flatMap((page) =>
      [...read(page).matchAll(/`((?:lib|adapters|bench|examples|fixtures|scripts|assembly|bin|__tests__|docs)\/[^`\s*]*)`/g)].map((m) => ({
        page,
        path: m[1]!,
      })),
    )
    expect(named.length).toBeGreaterThan(20)
    const missing = named
      .filter(({ path }) => !existsSync(join(root, path)))
      .map(({ page, path }) => `${page}: \`${path}\` does not exist; fix the page (or the path)`)
    expect(missing).toEqual([])
  })
})

describe('facts the code owns', () => {
  test('docs/api.md lists exactly the error codes of lib/errors.ts', () => {
    const union = /export type ErrorCode =([\s\S]*?)\n\n/.exec(read('lib/errors.ts'))?.[1] ?? ''
    const inCode = [...union.matchAll(/\|\s*'([a-z-]+)'/g)].map((m) => m[1]).sort()
    const inDocs = [...read('docs/api.md').matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]).sort()
    expect(inCode.length).toBeGreaterThan(10)
    expect(inDocs).toEqual(inCode)
  })
})

// ---- generated sections ------------------------------------------------------------------

function runScript(script: string, args: string[], cwd = root) {
  return spawnSync(process.execPath, [script, ...args], { cwd, encoding: 'utf8', timeout: 30_000 })
}

describe('generated sections', () => {
  test.each([
    ['docs/benchmarks.md (from bench/results.json)', 'scripts/bench-table.mjs', 'npm run docs:bench'],
    ['docs/architecture.md (the layout of lib/ and adapters/)', 'scripts/layout.mjs', 'npm run docs:layout'],
  ])('%s is up to date', (_what, script, fix) => {
    const r = runScript(join(root, script), ['--check'])
    if (r.status !== 0)
      throw new Error(`${r.stderr || r.stdout}\nThe committed page differs from what the generator writes now: run \`${fix}\` and commit the result.`)
  })

  test('the layout generator follows the tree: a new file makes the page stale, and regenerating lists it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeless-layout-'))
    try {
      for (const d of ['scripts', 'lib', 'adapters']) cpSync(join(root, d), join(dir, d), { recursive: true })
      mkdirSync(join(dir, 'docs'))
      cpSync(join(root, 'docs', 'architecture.md'), join(dir, 'docs', 'architecture.md'))
      mkdirSync(join(dir, 'lib', 'brand-new'))
      writeFileSync(
        join(dir, 'lib', 'brand-new', 'thing.ts'),
        '/**\n * Does a new thing. More words here.\n * @packageDocumentation\n */\nexport const x = 1\n',
      )
      writeFileSync(join(dir, 'lib', 'brand-new', 'bare.ts'), 'export const y = 2\n')
      const stale = runScript(join(dir, 'scripts', 'layout.mjs'), ['--check'], dir)
      expect(stale.status).toBe(1)
      expect(stale.stderr).toMatch(/stale; run `npm run docs:layout`/)
      expect(runScript(join(dir, 'scripts', 'layout.mjs'), [], dir).status).toBe(0)
      const page = readFileSync(join(dir, 'docs', 'architecture.md'), 'utf8')
      expect(page).toContain('- [`lib/brand-new/`](../lib/brand-new/)')
      expect(page).toContain('[`thing.ts`](../lib/brand-new/thing.ts): Does a new thing.')
      expect(page).toContain('[`bare.ts`](../lib/brand-new/bare.ts): (no description)')
      expect(runScript(join(dir, 'scripts', 'layout.mjs'), ['--check'], dir).status).toBe(0)
    } finally {
      rmSync(join(dir), { recursive: true, force: true })
    }
  })
})

// ---- examples ----------------------------------------------------------------------------

const RUNNABLE = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs'])
const all = PAGES.flatMap(fences)
const runnable = all.filter((s) => RUNNABLE.has(s.lang))
const noRun = runnable.filter((s) => s.marker?.startsWith('no-run'))
const toRun = runnable.filter((s) => !s.marker?.startsWith('no-run'))
const label = (s: Snippet) => `${s.page}:${s.line}${s.marker ? ` (${s.marker})` : ''}`

let sandbox = ''
beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'node.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  sandbox = mkdtempSync(join(tmpdir(), 'edgeless-docs-'))
  mkdirSync(join(sandbox, 'node_modules'))
  symlinkSync(root, join(sandbox, 'node_modules', 'edgeless'), 'dir')
  cpSync(join(root, 'fixtures', 'wasm'), join(sandbox, 'fixtures', 'wasm'), { recursive: true })
  for (const ex of ['ping-pong', 'sensor-pipeline']) {
    mkdirSync(join(sandbox, 'examples', ex), { recursive: true })
    cpSync(join(root, 'examples', ex, 'workflow.json'), join(sandbox, 'examples', ex, 'workflow.json'))
  }
  for (const f of ['pong', 'ping', 'tally']) cpSync(join(root, 'fixtures', 'wasm', `${f}.wasm`), join(sandbox, `${f}.wasm`))
  writeFileSync(join(sandbox, 'package.json'), '{ "name": "docs-examples", "private": true, "type": "module" }\n')
})
afterAll(() => {
  if (sandbox) rmSync(sandbox, { recursive: true, force: true })
})

describe('examples in README.md and docs/*.md', () => {
  test('markers are well-formed, and the examples not run are few and say why', () => {
    for (const s of all) {
      if (s.marker === undefined) continue
      const ok = s.marker === 'jest' || /^preamble=(\w+)$/.test(s.marker) || /^no-run reason="[^"]{10,}"$/.test(s.marker)
      if (!ok) throw new Error(`${label(s)}: unknown snippet marker; use preamble=NAME, jest, or no-run reason="..."`)
      const pre = /^preamble=(\w+)$/.exec(s.marker)?.[1]
      if (pre && !PREAMBLES[pre]) throw new Error(`${label(s)}: no preamble named "${pre}" (there are: ${Object.keys(PREAMBLES).join(', ')})`)
      if (!RUNNABLE.has(s.lang)) throw new Error(`${label(s)}: a snippet marker on a \`\`\`${s.lang} block, which is never run`)
    }
    console.log(`docs examples: ${toRun.length} run, ${noRun.length} marked no-run:\n${noRun.map((s) => `  ${label(s)}`).join('\n')}`)
    expect(toRun.length).toBeGreaterThanOrEqual(10)
    // Each no-run example is one the test cannot check: keep them rare.
    expect(noRun.length).toBeLessThanOrEqual(5)
  })

  test.each(toRun.map((s) => [label(s), s] as const))(
    '%s runs',
    async (_label, s) => {
      const pre = s.marker && /^preamble=(\w+)$/.exec(s.marker)?.[1]
      const { before, after } = pre ? PREAMBLES[pre]! : { before: '', after: '' }
      const source = `${before}${s.code}\n${after}`
      const { code } = await esbuild.transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: `${s.page}:${s.line}` })
      const name = `${s.page.replace(/[/.]/g, '_')}_${s.line}`
      let r: SpawnSyncReturns<string>
      if (s.marker === 'jest') {
        const file = join(sandbox, `${name}.test.mjs`)
        writeFileSync(file, code)
        const config = JSON.stringify({
          rootDir: sandbox,
          testMatch: [file],
          transform: {},
          testEnvironment: 'node',
          cacheDirectory: join(sandbox, '.jest-cache'),
        })
        r = spawnSync(process.execPath, [join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--config', config, '--ci', '--no-watchman'], {
          cwd: sandbox,
          encoding: 'utf8',
          timeout: SNIPPET_TIMEOUT_MS,
          env: { ...process.env, NODE_OPTIONS: '--experimental-vm-modules --no-warnings' },
        })
      } else {
        const file = join(sandbox, `${name}.mjs`)
        writeFileSync(file, code)
        r = spawnSync(process.execPath, ['--no-warnings', file], { cwd: sandbox, encoding: 'utf8', timeout: SNIPPET_TIMEOUT_MS })
      }
      if (r.status !== 0) {
        const why = r.error ? `${r.error.message} (time limit ${SNIPPET_TIMEOUT_MS} ms)` : `exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''}`
        throw new Error(`the example at ${label(s)} failed: ${why}\n--- code run ---\n${code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`)
      }
    },
    SNIPPET_TIMEOUT_MS + 10_000,
  )
})
