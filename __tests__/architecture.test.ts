// Architecture rules checked on the real source tree (issue 17): no import cycles among the
// TypeScript files of lib/ and adapters/, type imports included. scripts/check-cycles.mjs does
// the work (CI also runs it as a command); cycles that exist today are listed in
// scripts/cycles-allowed.json until the refactor breaks them, and the goal is an empty list.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { buildGraph, checkCycles, findCycles, parseImports, readAllowlist } from '../scripts/check-cycles.mjs'

describe('import cycles in lib/ and adapters/', () => {
  test('none beyond the allowlist, counting type imports, and the allowlist holds only cycles that still exist', () => {
    const result = checkCycles({ dirs: ['lib', 'adapters'], allowed: readAllowlist() })
    // The printed report names each cycle as a chain, so a failure says what to break.
    expect({ unexpected: result.unexpected, stale: result.stale, report: result.lines }).toEqual({
      unexpected: [],
      stale: [],
      report: expect.any(Array),
    })
    expect(result.files).toBeGreaterThan(50) // the scan really saw the tree
  })
})

describe('the cycle checker', () => {
  let dir: string
  const write = (files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true })
      writeFileSync(join(dir, name), text)
    }
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeless-cycles-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  test('finds a value cycle through three files and an index.ts, and prints it as a chain', () => {
    write({
      'src/a.ts': "import { b } from './b'\nexport const a = () => b\n",
      'src/b.ts': "import {\n  c,\n} from './pkg'\nexport const b = () => c\n",
      'src/pkg/index.ts': "export { c } from '../c.js'\n",
      'src/c.ts': "import { a } from './a'\nexport const c = () => a\n",
      'src/leaf.ts': "import { a } from './a'\nimport { readFileSync } from 'node:fs'\nexport const leaf = [a, readFileSync]\n",
    })
    const result = checkCycles({ dirs: ['src'], root: dir })
    expect(result.exitCode).toBe(1)
    expect(result.files).toBe(5)
    expect(result.cycles).toEqual([
      { files: ['src/a.ts', 'src/b.ts', 'src/c.ts', 'src/pkg/index.ts'], chains: ['src/a.ts -> src/b.ts -> src/pkg/index.ts -> src/c.ts -> src/a.ts'] },
    ])
    expect(result.lines).toContain('  src/a.ts -> src/b.ts -> src/pkg/index.ts -> src/c.ts -> src/a.ts')
    // A value cycle stays a cycle when type-only edges are ignored.
    expect(checkCycles({ dirs: ['src'], root: dir, typeOnlyOk: true }).exitCode).toBe(1)
  })

  test('a cycle made only of `import type` counts, unless --type-only-ok', () => {
    write({
      'src/x.ts': "import type { Y } from './y'\nexport interface X { y: Y }\n",
      'src/y.ts': "export type { X } from './x'\nimport type { X } from './x'\nexport interface Y { x?: X }\n",
      // `import { type Z }` still loads ./z under verbatimModuleSyntax: a value edge.
      'src/z.ts': "import { type W } from './w'\nexport type Z = W\n",
      'src/w.ts': "import type { Z } from './z'\nexport type W = Z | 1\n",
    })
    const strict = checkCycles({ dirs: ['src'], root: dir })
    expect(strict.cycles.map((c) => c.files)).toEqual([
      ['src/w.ts', 'src/z.ts'],
      ['src/x.ts', 'src/y.ts'],
    ])
    expect(strict.exitCode).toBe(1)
    const lenient = checkCycles({ dirs: ['src'], root: dir, typeOnlyOk: true })
    expect(lenient.cycles).toEqual([])
    expect(lenient.exitCode).toBe(0)
    expect(lenient.lines[0]).toBe('no import cycles among 4 files (ignoring type-only edges; 2 counting type imports, 0 ignoring type-only edges)')
  })

  test('imports inside comments and template literals are not edges; bare imports and self-imports are', () => {
    write({
      'src/p.ts': [
        '/** Example:',
        " * import { p } from './q'",
        ' */',
        '/*',
        "import { q } from './q'",
        '*/',
        "// import { q } from './q'",
        'export const code = `',
        "import { q } from './q'",
        '`',
        "import './self-ref'",
        '',
      ].join('\n'),
      'src/q.ts': "import { code } from './p'\nexport const q = code\n",
      'src/self-ref.ts': "import './self-ref'\n",
    })
    expect(parseImports('import \'./x\'\nexport * as ns from "../y"\n')).toEqual([
      { specifier: '../y', typeOnly: false },
      { specifier: './x', typeOnly: false },
    ])
    const cycles = findCycles(buildGraph([join(dir, 'src')]), { root: dir })
    expect(cycles).toEqual([{ files: ['src/self-ref.ts'], chains: ['src/self-ref.ts -> src/self-ref.ts'] }])
  })

  test('an allowlisted cycle passes; a stale allowlist entry fails', () => {
    write({
      'src/a.ts': "import { b } from './b'\nexport const a = 1 + b\n",
      'src/b.ts': "import type { T } from './a'\nexport const b = 2\nexport type T = number\n",
    })
    const allowed = checkCycles({ dirs: ['src'], root: dir, allowed: [['src/b.ts', 'src/a.ts']] })
    expect(allowed.exitCode).toBe(0)
    expect(allowed.lines.at(-1)).toBe('ok: every cycle is in scripts/cycles-allowed.json (the goal is an empty list)')
    const stale = checkCycles({
      dirs: ['src'],
      root: dir,
      allowed: [
        ['src/a.ts', 'src/b.ts'],
        ['src/gone.ts', 'src/a.ts'],
      ],
    })
    expect(stale.exitCode).toBe(1)
    expect(stale.stale).toEqual([['src/gone.ts', 'src/a.ts']])
  })
})
