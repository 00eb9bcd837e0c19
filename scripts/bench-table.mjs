// Writes the benchmark table of docs/benchmarks.md from bench/results.json (what
// `npm run bench` measured), between <!-- bench:start --> and <!-- bench:end -->, so the
// page never disagrees with the measurements. `npm run docs:bench`; `--check` only compares
// (the docs test runs that).
import { readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { updateSection } from './markers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A figure with about three significant digits: 10.9M, 883k, 23.0k, 4102, 1.35, 0.085. */
export function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`
  if (a >= 100) return String(Math.round(v))
  if (a >= 1) return v.toFixed(2)
  if (a === 0) return '0'
  return String(Number(v.toPrecision(2)))
}

/** A ratio as the page writes it: two decimals, one from 10× up. */
export const fmtRatio = (r) => (r === null || r === undefined ? '—' : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`)

/**
 * The runtime side's spread over its rounds: the `range` field when the run recorded one,
 * else the "(range a..b" that record() in bench/run.mjs writes into the note; "—" for rows
 * from side benchmarks, which report medians only.
 */
export function spreadOf(r) {
  if (Array.isArray(r.range) && r.range.length === 2) return `${fmt(r.range[0])}–${fmt(r.range[1])}`
  const m = /Median of (\d+) rounds of \d+ \(range ([^.;)]+(?:\.\d+)?[kM]?)\.\.([^;)]+)[;)]/.exec(r.note ?? '')
  return m ? `${m[2]}–${m[3]}` : '—'
}

const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/x(\d)/g, '×$1')

/** The markdown between the markers, from the parsed results.json. */
export function benchTable({ meta, results }) {
  const rows = results.map((r) => `| ${cell(r.name)} | ${fmt(r.value)} ${r.unit} | ${spreadOf(r)} | ${fmt(r.baselineValue)} | ${fmtRatio(r.ratio)} |`)
  const date = meta.date.replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC')
  return [
    '| measurement | runtime (median) | runtime rounds | baseline | ratio |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `Measured ${date}, Node ${meta.node}, ${meta.cpus} × ${meta.cpu} (${meta.platform}), load average ${meta.loadavg.join(' / ')} (1/5/15 min), ${meta.rounds} rounds of ~${meta.roundMs} ms per figure, ${meta.durationS} s in all. Ratio = runtime / baseline (for times per operation, above 1 is slower).`,
  ].join('\n')
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = JSON.parse(readFileSync(`${root}bench/results.json`, 'utf8'))
  updateSection(`${root}docs/benchmarks.md`, 'bench', benchTable(results), 'npm run docs:bench')
}
