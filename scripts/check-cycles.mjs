#!/usr/bin/env node
// Fails on any import cycle among the TypeScript files of lib/ and adapters/ (issue 17).
//
// A cycle makes module evaluation order depend on which file is imported first (a class
// used before its module has run is `undefined`), and it ties files together so none of
// them can be read, tested or moved alone. Type-only imports vanish at run time, but they
// still tie the files together, so they count unless --type-only-ok is given.
//
// Dependency-free on purpose: it reads the static `import ... from '...'`,
// `import '...'` and `export ... from '...'` statements with a small scanner (comments and
// template literals blanked out first), follows relative specifiers only (`./x` is x.ts or
// x/index.ts), and finds strongly connected components with Tarjan's algorithm.
//
// Usage:
//   node scripts/check-cycles.mjs [--type-only-ok] [--no-allowlist] [dir...]   (default dirs: lib adapters)
// Exit 0 when the cycles found are exactly those in scripts/cycles-allowed.json (the goal: an
// empty list), 1 otherwise, printing each cycle as `a.ts -> b.ts -> a.ts`. An allowlisted cycle
// that is gone also fails, so the list only shrinks and a broken cycle cannot quietly return.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (this file lives in scripts/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** The allowlist of cycles tolerated today; the goal is an empty list. */
export const ALLOWLIST = join(ROOT, 'scripts', 'cycles-allowed.json')

/** Every .ts file under `dir` (declaration files excluded), sorted for stable output. */
export function listTsFiles(dir) {
  const out = []
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue
      const p = join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p)
    }
  }
  walk(dir)
  return out
}

/**
 * Blanks out comments and template literals (keeping newlines and ordinary string
 * literals), so a statement quoted in TSDoc or in generated code is not read as an import.
 */
export function stripComments(src) {
  let out = ''
  let i = 0
  const n = src.length
  const blank = (s) => s.replace(/[^\n]/g, ' ')
  while (i < n) {
    const c = src[i]
    const d = src[i + 1]
    if (c === '/' && d === '/') {
      const j = src.indexOf('\n', i)
      const end = j < 0 ? n : j
      out += blank(src.slice(i, end))
      i = end
    } else if (c === '/' && d === '*') {
      const j = src.indexOf('*/', i + 2)
      const end = j < 0 ? n : j + 2
      out += blank(src.slice(i, end))
      i = end
    } else if (c === "'" || c === '"') {
      let j = i + 1
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1
      out += src.slice(i, j + 1)
      i = j + 1
    } else if (c === '`') {
      // Template literal, with ${...} holes that may nest further templates: blanked whole.
      let j = i + 1
      let depth = 0
      while (j < n) {
        const t = src[j]
        if (t === '\\') {
          j += 2
          continue
        }
        if (depth === 0 && t === '`') break
        if (t === '$' && src[j + 1] === '{') {
          depth++
          j += 2
          continue
        }
        if (depth > 0 && t === '{') depth++ // an object literal inside a ${...} hole
        if (depth > 0 && t === '}') depth--
        j++
      }
      out += blank(src.slice(i, j + 1))
      i = j + 1
    } else {
      out += c
      i++
    }
  }
  return out
}

// `import type X from`, `import { a, type b } from`, `import * as x from`, `export { a } from`,
// `export type { a } from`, `export * from`, `export * as ns from`; the clause may span lines.
const FROM_RE = /^[ \t]*(import|export)\s+(type\s+)?([^;'"]*?)\s*from\s*(['"])([^'"\n]+)\4/gm
// `import './x'`: evaluated for its side effects, a value edge.
const BARE_RE = /^[ \t]*import\s*(['"])([^'"\n]+)\1/gm

/**
 * The static imports and re-exports of one source text.
 * @returns {{ specifier: string, typeOnly: boolean }[]}
 */
export function parseImports(src) {
  const code = stripComments(src)
  const found = []
  for (const m of code.matchAll(FROM_RE)) {
    const [, , typeKw, clause, , specifier] = m
    // `import { type a, type b } from` is NOT type-only under verbatimModuleSyntax (tsconfig):
    // it compiles to `import {} from`, which still loads the module. Only the `type` keyword
    // before the clause erases the statement.
    if (clause.includes('=')) continue // `import x = require(...)`, not an ES import
    found.push({ specifier, typeOnly: Boolean(typeKw) })
  }
  for (const m of code.matchAll(BARE_RE)) found.push({ specifier: m[2], typeOnly: false })
  return found
}

/** Resolves a relative specifier from `fromFile` to an existing .ts file, or null. */
export function resolveSpecifier(fromFile, specifier) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../') && specifier !== '.' && specifier !== '..') return null
  const base = resolve(dirname(fromFile), specifier)
  // `./x.js` written for ESM output names x.ts in the sources.
  const stem = base.replace(/\.(m?js|ts)$/, '')
  for (const p of [`${stem}.ts`, join(base, 'index.ts')]) {
    if (existsSync(p) && statSync(p).isFile()) return p
  }
  return null
}

/**
 * The import graph of every .ts file under `dirs`: file -> (imported file -> typeOnly).
 * An edge is type-only when every statement from the file to that target is `import type`
 * or `export type`.
 */
export function buildGraph(dirs) {
  const files = dirs.flatMap((d) => (existsSync(d) ? listTsFiles(d) : []))
  const inGraph = new Set(files)
  const graph = new Map()
  for (const f of files) {
    const edges = new Map()
    for (const { specifier, typeOnly } of parseImports(readFileSync(f, 'utf8'))) {
      const target = resolveSpecifier(f, specifier)
      if (!target || !inGraph.has(target)) continue
      edges.set(target, (edges.get(target) ?? true) && typeOnly)
    }
    graph.set(f, edges)
  }
  return graph
}

/** Tarjan's strongly connected components (iterative: no recursion limit on long chains). */
export function stronglyConnected(nodes, successors) {
  let counter = 0
  const index = new Map()
  const low = new Map()
  const onStack = new Set()
  const stack = []
  const components = []
  for (const root of nodes) {
    if (index.has(root)) continue
    const work = [[root, successors(root)[Symbol.iterator]()]]
    index.set(root, counter)
    low.set(root, counter++)
    stack.push(root)
    onStack.add(root)
    while (work.length > 0) {
      const frame = work[work.length - 1]
      const [v, it] = frame
      const next = it.next()
      if (!next.done) {
        const w = next.value
        if (!index.has(w)) {
          index.set(w, counter)
          low.set(w, counter++)
          stack.push(w)
          onStack.add(w)
          work.push([w, successors(w)[Symbol.iterator]()])
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v), index.get(w)))
        }
        continue
      }
      work.pop()
      if (work.length > 0) {
        const parent = work[work.length - 1][0]
        low.set(parent, Math.min(low.get(parent), low.get(v)))
      }
      if (low.get(v) === index.get(v)) {
        const comp = []
        let w
        do {
          w = stack.pop()
          onStack.delete(w)
          comp.push(w)
        } while (w !== v)
        components.push(comp)
      }
    }
  }
  return components
}

/** A shortest path from `from` to `to` (BFS inside `members`), as a list of nodes. */
function shortestPath(from, to, members, successors) {
  const prev = new Map([[from, null]])
  const queue = [from]
  for (let k = 0; k < queue.length; k++) {
    const v = queue[k]
    if (v === to) {
      const path = []
      for (let u = v; u !== null; u = prev.get(u)) path.push(u)
      return path.reverse()
    }
    for (const w of successors(v)) {
      if (members.has(w) && !prev.has(w)) {
        prev.set(w, v)
        queue.push(w)
      }
    }
  }
  return [from, to] // unreachable inside a strongly connected component
}

/**
 * The cycles of the graph, one entry per strongly connected component of two or more files
 * (or a file importing itself): the component's files, and `chains`, shortest cycles shown as
 * `a.ts -> b.ts -> a.ts` that together use every import edge inside the component (so each
 * edge one might cut is shown). Paths are relative to `root`, with `/`.
 */
export function findCycles(graph, { typeOnlyOk = false, root = ROOT } = {}) {
  const successors = (v) => {
    const out = []
    for (const [w, typeOnly] of graph.get(v) ?? []) if (!(typeOnlyOk && typeOnly)) out.push(w)
    return out.sort()
  }
  const rel = (p) => relative(root, p).split(sep).join('/')
  const cycles = []
  for (const comp of stronglyConnected([...graph.keys()].sort(), successors)) {
    const selfLoop = comp.length === 1 && successors(comp[0]).includes(comp[0])
    if (comp.length < 2 && !selfLoop) continue
    const members = new Set(comp)
    const covered = new Set()
    const chains = []
    for (const u of comp.slice().sort()) {
      for (const w of successors(u)) {
        if (!members.has(w) || covered.has(`${u}\0${w}`)) continue
        // The shortest way back from w to u closes the cycle through the edge u -> w.
        const back = w === u ? [u] : shortestPath(w, u, members, successors)
        const path = [u, ...back]
        for (let i = 0; i + 1 < path.length; i++) covered.add(`${path[i]}\0${path[i + 1]}`)
        chains.push(path.map(rel).join(' -> '))
      }
    }
    cycles.push({ files: comp.map(rel).sort(), chains })
  }
  return cycles.sort((a, b) => (a.files[0] < b.files[0] ? -1 : 1))
}

/**
 * Runs the check over `dirs`. A cycle is allowed when its component's file set appears in
 * `allowed` (a list of file lists). Returns the findings, the lines to print and the exit code.
 */
export function checkCycles({ dirs = ['lib', 'adapters'], root = ROOT, typeOnlyOk = false, allowed = [] } = {}) {
  const graph = buildGraph(dirs.map((d) => resolve(root, d)))
  const all = findCycles(graph, { root })
  const valueOnly = findCycles(graph, { root, typeOnlyOk: true })
  const cycles = typeOnlyOk ? valueOnly : all
  const key = (files) => files.slice().sort().join('\n')
  const allowedKeys = new Set(allowed.map(key))
  const unexpected = cycles.filter((c) => !allowedKeys.has(key(c.files)))
  const seenKeys = new Set(cycles.map((c) => key(c.files)))
  const stale = allowed.filter((files) => !seenKeys.has(key(files)))
  const lines = []
  const count = `${graph.size} files`
  const figures = `${all.length} counting type imports, ${valueOnly.length} ignoring type-only edges`
  if (cycles.length === 0) {
    lines.push(`no import cycles among ${count}${typeOnlyOk ? ` (ignoring type-only edges; ${figures})` : ''}`)
  } else {
    lines.push(`import cycles among ${count}: ${figures}${typeOnlyOk ? ' (type-only edges ignored)' : ''}`)
    for (const c of cycles) {
      const tag = allowedKeys.has(key(c.files)) ? 'allowed' : 'CYCLE'
      lines.push(`${tag}: ${c.files.length} files tied together: ${c.files.join(', ')}`)
      for (const chain of c.chains) lines.push(`  ${chain}`)
    }
  }
  if (unexpected.length > 0) {
    lines.push(
      `FAIL: ${unexpected.length} cycle(s) not in scripts/cycles-allowed.json; break them (move what both files need into a third file they both import) rather than listing them`,
    )
  } else if (cycles.length > 0 && stale.length === 0) {
    lines.push('ok: every cycle is in scripts/cycles-allowed.json (the goal is an empty list)')
  }
  for (const files of stale)
    lines.push(`FAIL: allowlisted cycle no longer present (good), remove it from scripts/cycles-allowed.json so it cannot come back: ${files.join(', ')}`)
  return { files: graph.size, cycles, unexpected, stale, lines, exitCode: unexpected.length > 0 || stale.length > 0 ? 1 : 0 }
}

/** The allowlist: a JSON list of cycles, each the sorted list of its files. */
export function readAllowlist(path = ALLOWLIST) {
  if (!existsSync(path)) return []
  const list = JSON.parse(readFileSync(path, 'utf8'))
  if (!Array.isArray(list) || !list.every((c) => Array.isArray(c) && c.every((f) => typeof f === 'string'))) {
    throw new Error(`${path}: expected a JSON list of cycles, each a list of file paths such as ["lib/a.ts", "lib/b.ts"]`)
  }
  return list
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--type-only-ok' && a !== '--no-allowlist')
  if (unknown.length > 0) {
    console.error(`unknown option ${unknown.join(' ')}; usage: node scripts/check-cycles.mjs [--type-only-ok] [--no-allowlist] [dir...]`)
    process.exit(2)
  }
  const dirs = args.filter((a) => !a.startsWith('--'))
  const result = checkCycles({
    dirs: dirs.length > 0 ? dirs : undefined,
    root: dirs.length > 0 ? process.cwd() : ROOT,
    typeOnlyOk: args.includes('--type-only-ok'),
    allowed: args.includes('--no-allowlist') ? [] : readAllowlist(),
  })
  for (const l of result.lines) console.log(l)
  process.exit(result.exitCode)
}
