// Writes the "Layout" section of docs/architecture.md from the source tree: every folder of
// lib/ and adapters/ (recursively) and every .ts file in them, each file with the first
// sentence of its leading comment, between <!-- layout:start --> and <!-- layout:end -->.
// `npm run docs:layout`; `--check` only compares (the docs test runs that). Works on any
// tree: nothing here names a file.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { updateSection } from './markers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
/** The trees the page describes, in this order. */
export const TREES = ['lib', 'adapters']
export const NO_DESCRIPTION = '(no description)'

/**
 * A file's leading comment: `//` lines at the very top of the file, else the first
 * `/** ... *\/` block that starts at column 0. `header` says whether it describes the file
 * (it comes before any code, or says `@packageDocumentation` / `@module`) or is only the doc
 * comment of the file's first declaration. `undefined` when there is neither.
 */
export function leadingComment(source) {
  const lines = source.replace(/^#!.*\n/, '').split('\n')
  let i = 0
  while (i < lines.length && lines[i].trim() === '') i++
  if (lines[i]?.startsWith('//')) {
    const out = []
    for (; i < lines.length && lines[i].startsWith('//'); i++) out.push(lines[i].replace(/^\/\/+ ?/, ''))
    return { text: out.join('\n'), header: true }
  }
  const m = /^\/\*\*([\s\S]*?)\*\//m.exec(source)
  if (!m) return undefined
  const text = m[1]
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
  const header = source.slice(0, m.index).trim() === '' || /@packageDocumentation|@module/.test(text)
  return { text, header }
}

/** Abbreviations whose period does not end a sentence. */
const ABBREVIATIONS = /(?:\be\.g|\bi\.e|\betc|\bvs|\bcf)\.$/

/**
 * The first sentence of a comment, on one line: prose before any `@tag` or code fence,
 * `{@link X}` shown as `X`, up to the first `.`, `!` or `?` followed by a space or the end.
 */
export function firstSentence(comment) {
  const prose = []
  for (const line of comment.split('\n')) {
    const t = line.trim()
    if (t.startsWith('@') || t.startsWith('```') || /^[-*] /.test(t)) break
    if (t === '' && prose.length) break
    if (t) prose.push(t)
  }
  const text = prose
    .join(' ')
    .replace(/\{@link(?:code|plain)?\s+([^}|\s]+)(?:[\s|]+([^}]*))?\}/g, (_m, a, b) => (b ? b.trim() : `\`${a}\``))
    .replace(/\s+/g, ' ')
    .trim()
  if (!text) return ''
  const re = /[.!?](?=\s|$)/g
  for (let m; (m = re.exec(text)); ) {
    const upto = text.slice(0, m.index + 1)
    if (!ABBREVIATIONS.test(upto)) return upto
  }
  return text
}

/**
 * The lines of the layout list; the files that have no leading comment; and those whose
 * description is the doc comment of their first declaration (no file header).
 */
export function layout(base = root) {
  const lines = []
  const undocumented = []
  const symbolOnly = []
  const walk = (rel, depth) => {
    const entries = readdirSync(join(base, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name, 'en'))
    const pad = '  '.repeat(depth)
    lines.push(`${pad}- [\`${rel}/\`](../${rel}/)`)
    for (const e of entries) {
      if (!e.isFile() || !e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) continue
      const path = `${rel}/${e.name}`
      const comment = leadingComment(readFileSync(join(base, path), 'utf8'))
      const sentence = comment === undefined ? '' : firstSentence(comment.text)
      if (!sentence) undocumented.push(path)
      else if (!comment.header) symbolOnly.push(path)
      lines.push(`${pad}  - [\`${e.name}\`](../${path}): ${sentence || NO_DESCRIPTION}`)
    }
    for (const e of entries) if (e.isDirectory()) walk(`${rel}/${e.name}`, depth + 1)
  }
  for (const t of TREES) walk(t, 0)
  return { lines, undocumented, symbolOnly }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { lines, undocumented, symbolOnly } = layout()
  updateSection(`${root}docs/architecture.md`, 'layout', lines.join('\n'), 'npm run docs:layout')
  if (undocumented.length) console.log(`${undocumented.length} file(s) without a leading comment, listed as ${NO_DESCRIPTION}: ${undocumented.join(', ')}`)
  if (symbolOnly.length)
    console.log(`${symbolOnly.length} file(s) described by their first declaration's doc comment (no file header comment): ${symbolOnly.join(', ')}`)
}
