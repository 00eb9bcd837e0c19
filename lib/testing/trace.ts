/**
 * The message trace of a test kit: every cast, call, reply and event in order, with
 * readable payloads.
 * @packageDocumentation
 */
import type { CallResult } from '../call-result'
import { utf8Strict } from '../payload'

/** What kind of thing happened, as the trace records it. */
export type TraceKind = 'cast' | 'call' | 'reply' | 'crash' | 'restart' | 'dead-letter' | 'log'

/**
 * One entry of a message trace: who sent what to whom, when (virtual time), and for a call,
 * what came back.
 *
 * @example
 * ```ts
 * kit.trace.entries.filter((e) => e.kind === 'call' && e.to === 'ponger')
 * ```
 */
export interface TraceEntry {
  /** Order of recording (0, 1, 2, ...). */
  seq: number
  /** Virtual time in ms. */
  time: number
  kind: TraceKind
  /** Sender's logical name (`host` for the application, `?<id>` for an unknown instance). */
  from: string
  /** Receiver's logical name. */
  to: string
  /** The alias the sender used, when it used one. */
  alias?: string
  payload?: Uint8Array
  /** The payload as text when it is valid UTF-8, else `<n bytes>`. */
  text?: string
  /** For `reply` entries: the answer. */
  result?: CallResult
  /** For `crash`, `dead-letter` and `restart`: the reason or handler. */
  detail?: string
}

/** Render bytes for humans: the text when it is valid UTF-8, else a byte count. */
export function showBytes(b: Uint8Array | undefined): string {
  if (b === undefined) return ''
  const s = utf8Strict(b)
  return s !== undefined ? JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s) : `<${b.length} bytes>`
}

/**
 * The messages of a test run, in order, with helpers to query and print them. Two runs with
 * the same inputs (and the same seed) produce the same trace.
 *
 * @example
 * ```ts
 * expect(kit.trace.between('pinger', 'ponger').map((e) => e.text)).toEqual(['"PING-0"', '"PING-1"'])
 * console.log(kit.trace.format())
 * ```
 */
export class Trace {
  readonly entries: TraceEntry[] = []

  /** @internal */
  add(e: Omit<TraceEntry, 'seq' | 'text'>): TraceEntry {
    const entry: TraceEntry = { seq: this.entries.length, ...e, ...(e.payload ? { text: showBytes(e.payload) } : {}) }
    this.entries.push(entry)
    return entry
  }

  /** Casts and calls from `from` to `to` (by logical name). */
  between(from: string, to: string): TraceEntry[] {
    return this.entries.filter((e) => (e.kind === 'cast' || e.kind === 'call') && e.from === from && e.to === to)
  }

  /** Everything `name` sent, grouped by the alias used (`(raw)` for sends by id). */
  sentBy(name: string): Record<string, string[]> {
    const out: Record<string, string[]> = {}
    for (const e of this.entries) {
      if ((e.kind !== 'cast' && e.kind !== 'call') || e.from !== name) continue
      ;(out[e.alias ?? '(raw)'] ??= []).push(e.payload ? (utf8Strict(e.payload) ?? `<${e.payload.length} bytes>`) : '')
    }
    return out
  }

  /** Forget everything recorded so far. */
  clear(): void {
    this.entries.length = 0
  }

  /**
   * A readable listing, one entry per line, e.g.
   * `   3  t=1000ms  pinger -> ponger  call[ponger] "PING-1"` then `=> reply "PONG"`.
   * `last` limits it to the last n entries (tests print the tail on failure).
   */
  format(last = Infinity): string {
    const shown = this.entries.slice(Math.max(0, this.entries.length - last))
    const lines = shown.map((e) => {
      const head = `${String(e.seq).padStart(4)}  t=${e.time}ms  `
      switch (e.kind) {
        case 'cast':
        case 'call':
          return `${head}${e.from} -> ${e.to}  ${e.kind}${e.alias ? `[${e.alias}]` : ''} ${e.text ?? ''}`
        case 'reply':
          return `${head}${e.to} => ${e.from}  ${e.result?.kind === 'reply' ? `reply ${showBytes(e.result.data)}` : e.result?.kind === 'err' ? `err ${e.result.error.code}` : 'noreply'}`
        default:
          return `${head}${e.kind.toUpperCase()} ${e.to}${e.detail ? `: ${e.detail}` : ''}${e.text ? ` ${e.text}` : ''}`
      }
    })
    const skipped = this.entries.length - shown.length
    return `${skipped > 0 ? `  ... ${skipped} earlier entries\n` : ''}${lines.join('\n')}`
  }
}
