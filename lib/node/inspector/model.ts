/**
 * What the live inspector shows, kept up to date from the inspection stream: the workflows
 * as graphs (instances as nodes, output-mapping aliases as edges) with each instance's
 * lifecycle state, mailbox depth, message count and rate, plus recent logs, crashes and
 * lifecycle activity, and per-function latency figures from the metrics collector.
 * (No `node:*` here; the HTTP server is `server.ts`.)
 * @packageDocumentation
 */
import type { ActorStatus } from '../../actor/lifecycle'
import { collectMetrics, type Metrics, type MetricsSnapshot } from '../../inspect/metrics'
import { inspectStream, type InspectionEvent } from '../../inspect/stream'
import type { InstanceInfo } from '../../options'
import type { Runtime } from '../../runtime/runtime'

/** One instance, as a node of the inspector's graph. */
export interface InspectorNode {
  name: string
  /** The function (component) id. */
  id: string
  kind: 'function' | 'resource' | 'instance'
  /** Resource class type or function class id (workflow members). */
  classType?: string
  status: ActorStatus
  busy: boolean
  mailbox: number
  mailboxCapacity: number
  restarts: number
  timers: number
  /** Casts and calls handled since the inspector started. */
  messages: number
  /** Messages handled per second, over the last second. */
  rate: number
  crashes: number
  waitingOn?: string
  lastError?: string
}

/** An output-mapping alias: `from` casts or calls `to` as `alias`. */
export interface InspectorEdge {
  from: string
  to: string
  alias: string
}

/** A workflow (or the instances spawned outside workflows, with `id` ''). */
export interface InspectorGraph {
  name: string
  id: string
  file?: string
  nodes: InspectorNode[]
  edges: InspectorEdge[]
}

/** Per-function figures from the metrics (durations in seconds). */
export interface InspectorFunction {
  name: string
  casts: number
  calls: number
  castP50: number
  castP99: number
  callP50: number
  callP99: number
  initP50: number
  crashes: number
  restarts: number
  deadLetters: number
}

/** The JSON of `/state` (and of each `/events` message). */
export interface InspectorState {
  time: number
  startedAt: number
  nodeId: string
  graphs: InspectorGraph[]
  functions: InspectorFunction[]
  logs: Array<{ time: number; name: string; level: number; levelName: string; target: string; text: string; trace: number }>
  crashes: Array<{ time: number; name: string; handler: string; trap: string; message: string; trace: number }>
  activity: Array<{ time: number; name: string; type: string; text: string }>
  totals: { messages: number; crashes: number; restarts: number; deadLetters: number; logs: number }
}

const MAX_LOGS = 100
const MAX_CRASHES = 50
const MAX_ACTIVITY = 60
/**
 * Longest text kept per log line, crash or activity entry. A guest decides what it logs:
 * 120 lines of 6 MiB once made the state too long for one JavaScript string.
 */
export const MAX_TEXT_CHARS = 4096
/** Longest name or log target kept (also the guest's to choose). */
const MAX_NAME_CHARS = 200

/** `text` cut to `max` characters, the cut saying how long it was. */
function cut(text: string, max = MAX_TEXT_CHARS): string {
  if (text.length <= max) return text
  // Copied, not sliced: a V8 slice keeps the whole original string alive.
  const head = decoder.decode(encoder.encode(text.slice(0, max)))
  return `${head}… [cut: ${text.length} characters]`
}
const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface Counter {
  messages: number
  crashes: number
  last: number
  lastAt: number
  rate: number
}

/** Keep the last `max` items of a list (amortised: trims in chunks). */
function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item)
  if (list.length > max * 2) list.splice(0, list.length - max)
}

/** @internal */
export class InspectorModel {
  private readonly counters = new Map<string, Counter>()
  private readonly logs: InspectorState['logs'] = []
  private readonly crashes: InspectorState['crashes'] = []
  private readonly activity: InspectorState['activity'] = []
  private readonly totals = { messages: 0, crashes: 0, restarts: 0, deadLetters: 0, logs: 0 }
  private readonly off: () => void
  readonly metrics: Metrics
  private readonly ticker: ReturnType<typeof setInterval>
  readonly startedAt = Date.now()

  constructor(private readonly rt: Runtime) {
    this.metrics = collectMetrics(rt)
    this.off = inspectStream(rt, (e) => this.on(e))
    this.ticker = setInterval(() => this.tick(), 1000)
    ;(this.ticker as { unref?: () => void }).unref?.()
  }

  private counter(id: string): Counter {
    let c = this.counters.get(id)
    if (c === undefined) {
      c = { messages: 0, crashes: 0, last: 0, lastAt: Date.now(), rate: 0 }
      this.counters.set(id, c)
    }
    return c
  }

  private on(e: InspectionEvent): void {
    switch (e.type) {
      case 'message-finished':
        if (e.kind === 'cast' || e.kind === 'call') {
          this.counter(e.instance.function).messages++
          this.totals.messages++
        }
        break
      case 'actor-crashed':
        this.counter(e.instance.function).crashes++
        this.totals.crashes++
        pushBounded(
          this.crashes,
          { time: e.time, name: cut(e.name, MAX_NAME_CHARS), handler: e.handler, trap: e.trap, message: cut(e.error.message), trace: e.trace },
          MAX_CRASHES,
        )
        break
      case 'log':
        this.totals.logs++
        pushBounded(
          this.logs,
          {
            time: e.time,
            name: cut(e.name, MAX_NAME_CHARS),
            level: e.level,
            levelName: e.levelName,
            target: cut(e.target, MAX_NAME_CHARS),
            text: cut(e.text),
            trace: e.trace,
          },
          MAX_LOGS,
        )
        break
      case 'lifecycle':
        this.act({ time: e.time, name: e.name, type: 'lifecycle', text: `${e.from} → ${e.to}` })
        break
      case 'actor-restarted':
        this.totals.restarts++
        this.act({ time: e.time, name: e.name, type: 'restart', text: `restarted (#${e.restarts})` })
        break
      case 'actor-restart-scheduled':
        this.act({ time: e.time, name: e.name, type: 'restart-scheduled', text: `restarting ${e.restarting.join(', ')} in ${Math.round(e.delayMs)} ms` })
        break
      case 'actor-escalated':
        this.act({ time: e.time, name: e.name, type: 'escalation', text: e.reason.message })
        break
      case 'dead-letter':
        this.totals.deadLetters++
        this.act({ time: e.time, name: e.name, type: 'dead-letter', text: `${e.kind} of ${e.bytes} bytes: ${e.reason.message}` })
        break
      case 'warning':
        this.act({ time: e.time, name: e.name, type: 'warning', text: e.message })
        break
      case 'call-timed-out':
      case 'call-cycle':
        this.act({ time: e.time, name: e.name, type: e.type, text: e.error.message })
        break
      case 'state-failed':
        this.act({ time: e.time, name: e.name, type: `state-${e.reason}`, text: e.error.message })
        break
      case 'workflow-started':
      case 'workflow-stopped':
        this.act({ time: e.time, name: e.workflow, type: e.type, text: e.type === 'workflow-started' ? `started: ${e.instances.join(', ')}` : 'stopped' })
        break
      default:
        break
    }
  }

  /** One activity entry, its text and name cut (warnings and errors quote guest data). */
  private act(a: InspectorState['activity'][number]): void {
    pushBounded(this.activity, { ...a, name: cut(a.name, MAX_NAME_CHARS), text: cut(a.text) }, MAX_ACTIVITY)
  }

  /** Once a second: messages per second of every instance; forget instances that are gone. */
  private tick(): void {
    const now = Date.now()
    const live = this.rt.internals().actors
    for (const [id, c] of this.counters) {
      if (!live.has(id)) {
        this.counters.delete(id)
        continue
      }
      const dt = now - c.lastAt
      if (dt <= 0) continue
      c.rate = ((c.messages - c.last) * 1000) / dt
      c.last = c.messages
      c.lastAt = now
    }
  }

  private node(i: InstanceInfo, kind: InspectorNode['kind'], classType?: string): InspectorNode {
    const c = this.counters.get(i.id.function)
    return {
      name: i.name,
      id: i.id.function,
      kind,
      ...(classType !== undefined ? { classType } : {}),
      status: i.status,
      busy: i.busy,
      mailbox: i.mailbox,
      mailboxCapacity: i.mailboxCapacity,
      restarts: i.restarts,
      timers: i.timers,
      messages: c?.messages ?? 0,
      rate: Math.round((c?.rate ?? 0) * 10) / 10,
      crashes: c?.crashes ?? 0,
      ...(i.waitingOn !== undefined ? { waitingOn: i.waitingOn } : {}),
      ...(i.lastError !== undefined ? { lastError: cut(i.lastError.message) } : {}),
    }
  }

  /** The whole picture, as JSON-safe plain data. */
  state(): InspectorState {
    const graphs: InspectorGraph[] = []
    const inWorkflow = new Set<string>()
    for (const wf of this.rt.runningWorkflows()) {
      const members = wf.instances()
      const names = new Map(members.map((m) => [m.id.function, m.name]))
      const edges: InspectorEdge[] = []
      for (const m of members) {
        inWorkflow.add(m.id.function)
        for (const [alias, target] of Object.entries(m.outputs)) {
          const to = target.function === m.id.function ? m.name : names.get(target.function)
          if (to !== undefined) edges.push({ from: m.name, to, alias })
        }
      }
      graphs.push({
        name: wf.name,
        id: wf.id,
        ...(wf.file !== undefined ? { file: wf.file } : {}),
        nodes: members.map((m) => this.node(m, m.kind, m.classType)),
        edges,
      })
    }
    const rest = this.rt.instances().filter((i) => !inWorkflow.has(i.id.function))
    if (rest.length > 0) {
      const names = new Map(rest.map((m) => [m.id.function, m.name]))
      const edges: InspectorEdge[] = []
      for (const m of rest) {
        for (const [alias, target] of Object.entries(m.outputs)) {
          const to = names.get(target.function)
          if (to !== undefined) edges.push({ from: m.name, to, alias })
        }
      }
      graphs.push({ name: 'instances outside workflows', id: '', nodes: rest.map((i) => this.node(i, 'instance')), edges })
    }
    return {
      time: Date.now(),
      startedAt: this.startedAt,
      nodeId: this.rt.nodeId,
      graphs,
      functions: functionsOf(this.metrics.snapshot()),
      logs: this.logs.slice(-MAX_LOGS),
      crashes: this.crashes.slice(-MAX_CRASHES),
      activity: this.activity.slice(-MAX_ACTIVITY),
      totals: { ...this.totals },
    }
  }

  close(): void {
    clearInterval(this.ticker)
    this.off()
    this.metrics.close()
  }
}

function functionsOf(s: MetricsSnapshot): InspectorFunction[] {
  return Object.entries(s.functions).map(([name, m]) => ({
    name,
    casts: m.messages.cast,
    calls: m.messages.call,
    castP50: m.handlers.cast.p50,
    castP99: m.handlers.cast.p99,
    callP50: m.handlers.call.p50,
    callP99: m.handlers.call.p99,
    initP50: m.handlers.init.p50,
    crashes: m.crashes,
    restarts: m.restarts,
    deadLetters: m.deadLetters,
  }))
}
