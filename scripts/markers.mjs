// Shared by the generators of docs/ sections (bench-table.mjs, layout.mjs): put generated
// text between a pair of HTML-comment markers, and the --check mode the docs test uses.
import { readFileSync, writeFileSync } from 'node:fs'

/**
 * Replace what lies between `<!-- name:start -->` and `<!-- name:end -->` in `text` with
 * `body`. Throws, naming the file, when a marker is missing or doubled, so a generator never
 * writes into the wrong place.
 */
export function replaceBetween(text, name, body, file) {
  const start = `<!-- ${name}:start -->`
  const end = `<!-- ${name}:end -->`
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i || text.indexOf(start, i + 1) >= 0 || text.indexOf(end, j + 1) >= 0) {
    throw new Error(`${file}: expected exactly one "${start}" followed by one "${end}"; put the pair where the generated section goes`)
  }
  return `${text.slice(0, i + start.length)}\n${body.trimEnd()}\n${text.slice(j)}`
}

/**
 * Regenerate one marked section of `file`. With `--check` on the command line, write nothing
 * and exit 1 with `fix` in the message when the committed file differs from what would be
 * generated; otherwise write it (only if it changed).
 */
export function updateSection(file, name, body, fix) {
  const before = readFileSync(file, 'utf8')
  const after = replaceBetween(before, name, body, file)
  if (process.argv.includes('--check')) {
    if (before !== after) {
      console.error(`${file}: the generated "${name}" section is stale; run \`${fix}\` and commit the result.`)
      process.exit(1)
    }
    console.log(`${file}: "${name}" section up to date`)
    return
  }
  if (before !== after) writeFileSync(file, after)
  console.log(`${file}: "${name}" section ${before === after ? 'unchanged' : 'written'}`)
}
