/**
 * Prometheus text exposition (format 0.0.4) of a {@link MetricsSnapshot}.
 *
 * Platform-neutral (no `node:*`).
 * @packageDocumentation
 */
import type { HistogramSnapshot, MetricsSnapshot } from './metrics'

/** The `Content-Type` to serve {@link toPrometheus}'s text with. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Options of {@link toPrometheus}. */
export interface PrometheusOptions {
  /** Prefix of every metric name. Default `edgeless_`. */
  prefix?: string
  /** Labels added to every sample, e.g. `{ node: rt.nodeId }`. */
  labels?: Record<string, string>
}

/** A label value with `\`, `"` and newlines escaped, as the text format requires. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** HELP text with `\` and newlines escaped. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** A sample value: Go float syntax (`+Inf`, `-Inf`, `NaN`). */
function num(v: number): string {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

function labelText(labels: Array<[string, string]>): string {
  if (labels.length === 0) return ''
  return `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`
}

/**
 * Render a metrics snapshot as Prometheus text: a `# HELP` and `# TYPE` line per family,
 * histograms as `_bucket{le="…"}` (cumulative, ending with `+Inf`), `_sum` and `_count`,
 * every sample labelled `function="<name>"`.
 *
 * @example
 * ```ts
 * const m = collectMetrics(rt)
 * res.setHeader('content-type', PROMETHEUS_CONTENT_TYPE)
 * res.end(toPrometheus(m.snapshot()))
 * ```
 */
export function toPrometheus(snapshot: MetricsSnapshot, options: PrometheusOptions = {}): string {
  const prefix = options.prefix ?? 'edgeless_'
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(`${prefix}x`))
    throw new RangeError(`toPrometheus: prefix ${JSON.stringify(prefix)} is not a valid metric name prefix.`)
  const extra = Object.entries(options.labels ?? {})
  for (const [k] of extra) {
    if (!LABEL_NAME.test(k) || k.startsWith('__') || k === 'le' || k === 'function')
      throw new RangeError(`toPrometheus: ${JSON.stringify(k)} cannot be a label name.`)
  }
  const out: string[] = []
  const fns = Object.entries(snapshot.functions)
  const family = (name: string, type: 'histogram' | 'counter' | 'gauge', help: string) => {
    out.push(`# HELP ${prefix}${name} ${escapeHelp(help)}`, `# TYPE ${prefix}${name} ${type}`)
  }
  const sample = (name: string, labels: Array<[string, string]>, v: number) => {
    out.push(`${prefix}${name}${labelText([...labels, ...extra])} ${num(v)}`)
  }
  const histogram = (name: string, labels: Array<[string, string]>, h: HistogramSnapshot) => {
    for (const b of h.buckets) sample(`${name}_bucket`, [...labels, ['le', num(b.le)]], b.count)
    sample(`${name}_sum`, labels, h.sum)
    sample(`${name}_count`, labels, h.count)
  }

  family('instantiate_duration_seconds', 'histogram', 'Time to instantiate a function instance (wasm instantiation or the JS function), per function.')
  for (const [fn, m] of fns) histogram('instantiate_duration_seconds', [['function', fn]], m.instantiate)

  family('handler_duration_seconds', 'histogram', 'Wall time of completed handler invocations (init, cast, call, stop), per function.')
  for (const [fn, m] of fns) {
    for (const h of ['init', 'cast', 'call', 'stop'] as const)
      histogram(
        'handler_duration_seconds',
        [
          ['function', fn],
          ['handler', h],
        ],
        m.handlers[h],
      )
  }

  family('messages_total', 'counter', 'Casts and calls handled (completed or crashed), per function.')
  for (const [fn, m] of fns) {
    sample(
      'messages_total',
      [
        ['function', fn],
        ['kind', 'cast'],
      ],
      m.messages.cast,
    )
    sample(
      'messages_total',
      [
        ['function', fn],
        ['kind', 'call'],
      ],
      m.messages.call,
    )
  }

  family('function_exits_total', 'counter', 'Instances that ended: stopped normally, crashed (a handler trapped or threw), or failed (given up on).')
  for (const [fn, m] of fns) {
    for (const st of ['stopped', 'crashed', 'failed'] as const)
      sample(
        'function_exits_total',
        [
          ['function', fn],
          ['status', st],
        ],
        m.exits[st],
      )
  }

  family('crashes_total', 'counter', 'Handler crashes (traps, panics, exceptions), per function.')
  for (const [fn, m] of fns) sample('crashes_total', [['function', fn]], m.crashes)

  family('restarts_total', 'counter', 'Restarts by a supervisor, per function.')
  for (const [fn, m] of fns) sample('restarts_total', [['function', fn]], m.restarts)

  family('dead_letters_total', 'counter', 'Messages not delivered or not processed, per receiving function.')
  for (const [fn, m] of fns) sample('dead_letters_total', [['function', fn]], m.deadLetters)

  family('activations_total', 'counter', 'Hibernated instances woken by a message (passivation), per function.')
  for (const [fn, m] of fns) sample('activations_total', [['function', fn]], m.activations)

  family('hibernations_total', 'counter', 'Idle instances hibernated (passivation), per function.')
  for (const [fn, m] of fns) sample('hibernations_total', [['function', fn]], m.hibernations)

  family('instances', 'gauge', 'Addressable instances (hibernated ones included), per function.')
  for (const [fn, m] of fns) sample('instances', [['function', fn]], m.instances)

  family('hibernated_instances', 'gauge', 'Hibernated instances (no wasm instance held), per function.')
  for (const [fn, m] of fns) sample('hibernated_instances', [['function', fn]], m.hibernated)

  family('mailbox_messages', 'gauge', 'Messages waiting in mailboxes, per function.')
  for (const [fn, m] of fns) sample('mailbox_messages', [['function', fn]], m.mailbox)

  return `${out.join('\n')}\n`
}
