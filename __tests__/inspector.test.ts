// Inspection and telemetry (issue 10): the typed inspection stream on real runs (the
// ping-pong and sensor-pipeline workflows, the crashy fixture), metrics with upstream's
// parity and their Prometheus text, trace ids that reconstruct one request's path, the
// OpenTelemetry export through a recording tracer, the inspector's HTTP server and the CLI's
// --inspect, and the live page in a real Chromium (__tests__/helpers/browser.ts finds one, driven by
// playwright-core), which also saves docs/inspector-screenshot.png.
import { mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createServer as createNetServer, type Server as NetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from '@jest/globals'
import type { BrowserContext, Page } from 'playwright-core'
import { reply, Runtime, utf8, type EdgeFunction, type RuntimeEvents } from '../lib/node/index'
import {
  collectMetrics,
  exportToOpenTelemetry,
  INSPECTION_EVENT_TYPES,
  inspectStream,
  toPrometheus,
  traceOf,
  tracePath,
  type InspectionEvent,
  type InspectionEventType,
  type SpanAttributeValue,
} from '../lib/inspect/index'
import { startInspector, type InspectorState } from '../lib/node/inspector/index'
import { main } from '../lib/node/cli'
import { launchChromium } from './helpers/browser'
import { until, wasmPath } from './helpers/fixtures'

const root = fileURLToPath(new URL('..', import.meta.url))
const PING_PONG = join(root, 'examples/ping-pong/workflow.json')
const SENSOR = join(root, 'examples/sensor-pipeline/workflow.json')
const SCREENSHOT = join(root, 'docs/inspector-screenshot.png')

const runtimes: Runtime[] = []
function runtime(options: ConstructorParameters<typeof Runtime>[0] = {}): Runtime {
  const rt = new Runtime({ consoleLog: false, ...options })
  runtimes.push(rt)
  return rt
}
afterAll(async () => {
  await Promise.all(runtimes.map((rt) => rt.shutdown().catch(() => {})))
})

const EVENT_NAMES: Array<keyof RuntimeEvents> = [
  'spawn',
  'stop',
  'crash',
  'log',
  'warning',
  'dead-letter',
  'call-timeout',
  'call-cycle',
  'late-reply',
  'state-written',
  'state-sync-failed',
  'state-lost',
  'state-conflict',
  'lifecycle',
  'restart-scheduled',
  'restart',
  'escalation',
  'mailbox-full',
  'workflow-start',
  'workflow-stop',
]
const listeners = (rt: Runtime) => EVENT_NAMES.reduce((n, e) => n + rt.listenerCount(e), 0)
const types = (events: InspectionEvent[]) => new Set(events.map((e) => e.type))
const of = <T extends InspectionEventType>(events: InspectionEvent[], type: T) =>
  events.filter((e): e is Extract<InspectionEvent, { type: T }> => e.type === type)

/** A JS function that records what it is cast. */
function sink(into: string[]): EdgeFunction {
  return {
    handleCast: (_src, msg) => {
      into.push(utf8(msg))
    },
  }
}

// ---- the stream ---------------------------------------------------------------------------

describe('inspectStream', () => {
  const seen = new Set<InspectionEventType>()

  test('reports a real ping-pong run: lifecycle, messages, sends, calls, timers, state, logs', async () => {
    const rt = runtime()
    const events: InspectionEvent[] = []
    const off = inspectStream(rt, (e) => events.push(e))
    const wf = await rt.startWorkflow(PING_PONG)
    // The first wakeup runs at once; the next one is a delayed cast, 1 s later.
    await until(() => of(events, 'timer-fired').length >= 1 && of(events, 'call-replied').length >= 2, 10_000, 'two pings')
    await wf.stop()
    off()
    for (const t of types(events)) seen.add(t)

    for (const t of [
      'actor-instantiated',
      'actor-initialised',
      'actor-spawned',
      'lifecycle',
      'message-enqueued',
      'message-started',
      'message-finished',
      'cast-sent',
      'call-sent',
      'call-replied',
      'timer-set',
      'timer-fired',
      'timer-cancelled',
      'state-written',
      'log',
      'actor-stopped',
      'workflow-started',
      'workflow-stopped',
    ] as const) {
      expect([t, of(events, t).length > 0]).toEqual([t, true])
    }
    // Every instance-level event names its instance and has a time.
    for (const e of events) {
      expect(typeof e.time).toBe('number')
      if ('instance' in e) expect(['pinger', 'ponger']).toContain(e.name)
    }
    const call = of(events, 'call-sent')[0]!
    expect(call).toMatchObject({ name: 'ponger', fromName: 'pinger', alias: 'ponger', bytes: 'PING-0'.length })
    expect(call.trace).toBeGreaterThan(0)
    const replied = of(events, 'call-replied').find((e) => e.trace === call.trace)!
    expect(replied).toMatchObject({ name: 'ponger', ok: true })
    expect(replied.ms).toBeGreaterThanOrEqual(0)
    // The pinger's log line about the reply belongs to the message that made the call.
    const gotReply = of(events, 'log').find((e) => e.text.startsWith('Got Reply: PONG'))!
    expect(gotReply).toMatchObject({ name: 'pinger', trace: call.trace, levelName: 'info', target: 'ping' })
    // The timer the wakeup set carries its trace, and it was cancelled by the stop.
    expect(of(events, 'timer-set')[0]).toMatchObject({ name: 'pinger', delayMs: 1000, trace: call.trace })
    expect(of(events, 'timer-cancelled').some((e) => e.name === 'pinger')).toBe(true)
    expect(of(events, 'state-written')[0]).toMatchObject({ name: 'pinger', stateId: 'ping-pong/workflow/pinger' })
    expect(
      of(events, 'lifecycle')
        .filter((e) => e.name === 'ponger')
        .map((e) => `${e.from}>${e.to}`),
    ).toEqual(['starting>running', 'running>stopping', 'stopping>stopped'])
    // Mailbox depths are reported: the init's cast to self queued while the pinger started.
    expect(of(events, 'message-enqueued').find((e) => e.name === 'pinger')).toMatchObject({ kind: 'cast', depth: 1 })
    const finished = of(events, 'message-finished').filter((e) => e.name === 'ponger' && e.kind === 'call')
    expect(finished.length).toBeGreaterThanOrEqual(2)
    for (const f of finished) expect(f.depth).toBe(0)
    // Order: a handler starts before it finishes.
    const started = events.findIndex((e) => e.type === 'message-started' && e.trace === call.trace && e.name === 'ponger')
    expect(started).toBeGreaterThanOrEqual(0)
    expect(events.indexOf(replied)).toBeGreaterThan(started)
  }, 30_000)

  test('reports crashes, restarts, dead letters and escalation of the crashy fixture', async () => {
    const rt = runtime({ supervision: { maxRestarts: 1, periodMs: 60_000, backoff: { initialMs: 0 } } })
    const events: InspectionEvent[] = []
    const off = inspectStream(rt, (e) => events.push(e))
    const out: string[] = []
    const recorder = await rt.spawn({ name: 'recorder', fn: sink(out) })
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: recorder } })
    crashy.cast('panic')
    await until(() => of(events, 'actor-restarted').length === 1, 5000, 'the restart')
    // The restarted instance works; a second crash exceeds the intensity (1 restart): it fails.
    expect(await crashy.call('hello')).toMatchObject({ kind: 'reply' })
    const r = await crashy.call('panic')
    expect(r.kind).toBe('err')
    await until(() => of(events, 'actor-escalated').length === 1, 5000, 'the escalation')
    crashy.cast('after') // refused: the instance failed
    await crashy.stop()
    off()
    for (const t of types(events)) seen.add(t)

    const sends = of(events, 'cast-sent').filter((e) => e.name === 'crashy' && e.fromName === 'host')
    const crashes = of(events, 'actor-crashed')
    expect(crashes.map((c) => [c.name, c.handler, c.trap])).toEqual([
      ['crashy', 'cast', 'unreachable'],
      ['crashy', 'call', 'unreachable'],
    ])
    // The crash and the dead letter of the message it crashed on carry that message's trace.
    expect(crashes[0]!.trace).toBe(sends[0]!.trace)
    const dead = of(events, 'dead-letter')
    expect(dead[0]).toMatchObject({ name: 'crashy', kind: 'cast', trace: sends[0]!.trace })
    expect(dead.at(-1)).toMatchObject({ name: 'crashy', kind: 'cast', trace: 0 })
    expect(dead.at(-1)!.reason.code).toBe('instance-failed')
    expect(of(events, 'actor-restart-scheduled')[0]).toMatchObject({ name: 'crashy', restarting: ['crashy'] })
    expect(of(events, 'actor-restarted')[0]).toMatchObject({ name: 'crashy', restarts: 1 })
    expect(of(events, 'actor-escalated')[0]!.reason.code).toBe('restart-intensity')
    expect(
      of(events, 'call-replied')
        .filter((e) => e.name === 'crashy')
        .map((e) => e.ok),
    ).toEqual([true, false])
    // Init ran twice (spawn and restart), both reported.
    expect(
      of(events, 'actor-initialised')
        .filter((e) => e.name === 'crashy')
        .map((e) => e.ok),
    ).toEqual([true, true])
    expect(
      of(events, 'lifecycle')
        .filter((e) => e.name === 'crashy')
        .map((e) => e.to),
    ).toEqual(['running', 'crashed', 'restarting', 'running', 'crashed', 'failed', 'stopping', 'stopped'])
    expect(out.filter((o) => o === 'init:-')).toHaveLength(2) // its init ran twice
  }, 30_000)

  test('reports calls that go wrong, full mailboxes, warnings and failed state writes', async () => {
    const failing = {
      get: () => undefined,
      set: () => {
        throw new Error('disk on fire')
      },
      delete: () => {},
    }
    const rt = runtime({ stateStore: failing, stateWrites: { retryInitialMs: 10, flushTimeoutMs: 100 } })
    const events: InspectionEvent[] = []
    const off = inspectStream(rt, (e) => events.push(e))
    let release: () => void = () => {}
    const slow = await rt.spawn({ name: 'slow', fn: { handleCall: () => new Promise((r) => setTimeout(() => r(reply('late')), 80)) } })
    const loop = await rt.spawn({
      name: 'loop',
      fn: {
        handleCall: async (_s, _m, ctx) => {
          await ctx.call('self', 'again')
          return reply('x')
        },
      },
    })
    const busy = await rt.spawn({
      name: 'busy',
      mailboxCapacity: 1,
      fn: {
        handleCast: (_s, m) =>
          utf8(m) === '1'
            ? new Promise<void>((r) => {
                release = r
              })
            : undefined,
      },
    })
    const lost = await rt.spawn({
      name: 'stray',
      fn: {
        handleCast: (_s, m, ctx) => {
          ctx.cast('nowhere', m)
          ctx.sync('s')
        },
      },
    })

    expect((await slow.call('x', { timeoutMs: 20 })).kind).toBe('err')
    expect((await loop.call('x')).kind).toBe('reply')
    busy.cast('1') // runs (and waits)
    await until(() => rt.inspect(busy)!.busy, 5000, 'busy')
    busy.cast('2') // queued
    busy.cast('3') // refused: the mailbox holds 1
    release()
    lost.cast('m')
    await until(() => of(events, 'call-late-reply').length > 0 && of(events, 'state-failed').length > 0, 5000, 'late reply and state failure')
    await rt.shutdown()
    off()
    for (const t of types(events)) seen.add(t)

    expect(of(events, 'call-timed-out')[0]).toMatchObject({ name: 'slow', timeoutMs: 20 })
    expect(of(events, 'call-late-reply')[0]).toMatchObject({ name: 'slow' })
    expect(of(events, 'call-cycle')[0]).toMatchObject({ name: 'loop', caller: 'loop', cycle: ['loop', 'loop'] })
    expect(of(events, 'mailbox-full')[0]).toMatchObject({ name: 'busy', capacity: 1, policy: 'reject' })
    expect(of(events, 'warning')[0]).toMatchObject({ name: 'stray', code: 'unknown-alias' })
    const stateFailed = of(events, 'state-failed')
    expect(stateFailed[0]).toMatchObject({ name: 'stray', reason: 'sync-failed', attempt: 1 })
    // The stop's flush gave up after 100 ms: the value is reported lost.
    expect(stateFailed.some((e) => e.reason === 'lost')).toBe(true)
  }, 30_000)

  test('covers every event type of the union', () => {
    expect(INSPECTION_EVENT_TYPES.filter((t) => !seen.has(t))).toEqual([])
  })

  test('unsubscribing stops the events and removes the observer and every listener', async () => {
    const rt = runtime()
    const base = listeners(rt)
    expect(rt.internals().observer).toBeNull()
    const events: InspectionEvent[] = []
    const off = inspectStream(rt, (e) => events.push(e))
    expect(rt.internals().observer).not.toBeNull()
    expect(listeners(rt)).toBeGreaterThan(base)
    const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
    await pong.call('PING')
    const n = events.length
    expect(n).toBeGreaterThan(0)
    off()
    off() // harmless twice
    expect(rt.internals().observer).toBeNull()
    expect(listeners(rt)).toBe(base)
    await pong.call('PING')
    pong.cast('x')
    await pong.stop()
    expect(events.length).toBe(n)
  }, 30_000)

  test('a listener that throws does not break the runtime', async () => {
    const rt = runtime()
    const thrown: unknown[] = []
    const original = globalThis.queueMicrotask
    globalThis.queueMicrotask = (fn) =>
      original(() => {
        try {
          fn()
        } catch (e) {
          thrown.push(e)
        }
      })
    try {
      const off = inspectStream(rt, () => {
        throw new Error('listener bug')
      })
      const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
      const r = await pong.call('PING')
      expect(r.kind === 'reply' && utf8(r.data)).toBe('PONG')
      off()
      await pong.stop()
    } finally {
      globalThis.queueMicrotask = original
    }
    expect(thrown.length).toBeGreaterThan(0)
  }, 30_000)
})

// ---- trace ids ----------------------------------------------------------------------------

describe('trace ids', () => {
  test("reconstruct one reading's path through sensor -> filter -> average -> log", async () => {
    const rt = runtime()
    const events: InspectionEvent[] = []
    const off = inspectStream(rt, (e) => events.push(e))
    const logged: string[] = []
    const wf = await rt.startWorkflow(SENSOR, { replace: { log: sink(logged) } })
    wf.get('filter')!.cast('12.5') // in range [5, 25]: it goes all the way
    const injected = of(events, 'cast-sent').find((e) => e.fromName === 'host' && e.name === 'filter')!
    const T = injected.trace
    await until(() => of(events, 'message-finished').some((e) => e.name === 'log' && e.trace === T), 5000, 'the reading to reach the log')
    // Let the sensor send a reading or two of its own meanwhile.
    await until(() => of(events, 'cast-sent').some((e) => e.fromName === 'sensor' && e.name === 'filter'), 5000, 'a sensor reading')
    await wf.stop()
    off()

    expect(tracePath(events, T).map((h) => `${h.from} -${h.kind}(${h.alias ?? ''})-> ${h.to}`)).toEqual([
      'host -cast()-> filter',
      'filter -cast(output)-> average',
      'average -cast(output)-> log',
    ])
    expect(
      traceOf(events, T)
        .filter((e) => e.type === 'message-finished')
        .map((e) => e.name),
    ).toEqual(['filter', 'average', 'log'])
    expect(traceOf(events, T).every((e) => 'trace' in e && e.trace === T)).toBe(true)
    // The sensor's readings are another request (its ticks are delayed casts that inherit the
    // trace of the tick that set them), and none of its hops is in the injected trace.
    const sensorTrace = of(events, 'cast-sent').find((e) => e.fromName === 'sensor' && e.name === 'filter')!.trace
    expect(sensorTrace).not.toBe(T)
    expect(tracePath(events, sensorTrace).some((h) => h.from === 'host')).toBe(false)
    expect(tracePath(events, sensorTrace).map((h) => h.from)).toContain('sensor')
    expect(traceOf(events, 0)).toEqual([])
  }, 30_000)
})

// ---- metrics and Prometheus ---------------------------------------------------------------

describe('collectMetrics and toPrometheus', () => {
  test('count every cast and call with plausible durations, and the exits', async () => {
    const rt = runtime()
    const m = collectMetrics(rt)
    const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
    const t0 = performance.now()
    for (let i = 0; i < 50; i++) expect((await pong.call(`PING-${i}`)).kind).toBe('reply')
    for (let i = 0; i < 20; i++) pong.cast(`c${i}`)
    await until(() => rt.inspect(pong)!.mailbox === 0 && !rt.inspect(pong)!.busy, 5000, 'casts handled')
    const elapsed = (performance.now() - t0) / 1000
    let s = m.snapshot().functions['ponger']!
    expect(s.messages).toEqual({ cast: 20, call: 50 })
    expect(s.handlers.call.count).toBe(50)
    expect(s.handlers.cast.count).toBe(20)
    expect(s.handlers.init.count).toBe(1)
    expect(s.instantiate.count).toBe(1)
    expect(s.instances).toBe(1)
    for (const h of [s.handlers.call, s.handlers.cast]) {
      expect(h.min).toBeGreaterThan(0)
      expect(h.min).toBeLessThanOrEqual(h.p50)
      expect(h.p50).toBeLessThanOrEqual(h.p95)
      expect(h.p95).toBeLessThanOrEqual(h.p99)
      expect(h.p99).toBeLessThanOrEqual(h.max)
      expect(h.sum).toBeLessThanOrEqual(elapsed) // handlers ran inside the measured time
      expect(h.max).toBeLessThan(1)
      expect(h.sum / h.count).toBeGreaterThanOrEqual(h.min)
      // Cumulative buckets, ending with +Inf = count.
      for (let i = 1; i < h.buckets.length; i++) expect(h.buckets[i]!.count).toBeGreaterThanOrEqual(h.buckets[i - 1]!.count)
      expect(h.buckets.at(-1)).toEqual({ le: Infinity, count: h.count })
    }
    await pong.stop()
    s = m.snapshot().functions['ponger']!
    expect(s.handlers.stop.count).toBe(1)
    expect(s.exits).toEqual({ stopped: 1, crashed: 0, failed: 0 })
    expect(s.instances).toBe(0)
    m.close()
    expect(rt.internals().observer).toBeNull()
  }, 30_000)

  test('count crashes, restarts, dead letters and failed exits', async () => {
    const rt = runtime({ supervision: { maxRestarts: 1, periodMs: 60_000, backoff: { initialMs: 0 } } })
    const m = collectMetrics(rt)
    const recorder = await rt.spawn({ name: 'recorder', fn: sink([]) })
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: recorder } })
    crashy.cast('panic')
    await until(() => m.snapshot().functions['crashy']!.restarts === 1, 5000, 'the restart')
    await crashy.call('panic')
    await until(() => rt.inspect(crashy)?.status === 'failed', 5000, 'failed')
    await crashy.stop()
    const s = m.snapshot().functions['crashy']!
    expect(s.crashes).toBe(2)
    expect(s.restarts).toBe(1)
    expect(s.deadLetters).toBe(2) // the two messages it crashed on
    expect(s.exits).toEqual({ stopped: 0, crashed: 2, failed: 1 })
    expect(s.messages).toEqual({ cast: 1, call: 1 })
    expect(s.handlers.cast.count).toBe(0) // completed invocations only
    expect(s.handlers.init.count).toBe(2)
    m.close()
  }, 30_000)

  test('the Prometheus text parses, with histograms, counters, escaping', async () => {
    const rt = runtime()
    const m = collectMetrics(rt)
    const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
    for (let i = 0; i < 7; i++) await pong.call('PING')
    const weird = await rt.spawn({ name: 'we"ird\\name\nx', fn: { handleCast: () => {} } })
    weird.cast('x')
    await until(() => m.snapshot().functions['we"ird\\name\nx']?.messages.cast === 1, 5000, 'the cast')
    const text = toPrometheus(m.snapshot())
    const lines = text.trimEnd().split('\n')
    expect(text.endsWith('\n')).toBe(true)
    const SAMPLE =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|-Inf|NaN)$/
    const typed = new Map<string, string>()
    for (const l of lines) {
      const t = /^# TYPE (\S+) (histogram|counter|gauge)$/.exec(l)
      if (t) {
        typed.set(t[1]!, t[2]!)
        continue
      }
      if (/^# HELP \S+ .+$/.test(l)) continue
      const s = SAMPLE.exec(l)
      expect([l, s !== null]).toEqual([l, true])
      const family = s![1]!.replace(/_(bucket|sum|count)$/, '')
      expect([l, typed.has(family) || typed.has(s![1]!)]).toEqual([l, true])
    }
    expect(typed.get('edgeless_handler_duration_seconds')).toBe('histogram')
    expect(typed.get('edgeless_instantiate_duration_seconds')).toBe('histogram')
    expect(typed.get('edgeless_messages_total')).toBe('counter')
    expect(typed.get('edgeless_function_exits_total')).toBe('counter')
    expect(typed.get('edgeless_instances')).toBe('gauge')
    expect(text).toMatch(/^edgeless_handler_duration_seconds_bucket\{function="ponger",handler="call",le="\+Inf"\} 7$/m)
    expect(text).toMatch(/^edgeless_handler_duration_seconds_bucket\{function="ponger",handler="call",le="0\.001"\} [0-7]$/m)
    expect(text).toMatch(/^edgeless_handler_duration_seconds_count\{function="ponger",handler="call"\} 7$/m)
    expect(text).toMatch(/^edgeless_handler_duration_seconds_sum\{function="ponger",handler="call"\} \d+\.\d+(e-\d+)?$/m)
    expect(text).toMatch(/^edgeless_messages_total\{function="ponger",kind="call"\} 7$/m)
    expect(text).toMatch(/^edgeless_instances\{function="ponger"\} 1$/m)
    expect(text).toContain('edgeless_messages_total{function="we\\"ird\\\\name\\nx",kind="cast"} 1')
    // Buckets of every series are cumulative and end with +Inf = _count.
    const series = new Map<string, number[]>()
    for (const l of lines) {
      const b = /^edgeless_handler_duration_seconds_bucket\{(.*),le="[^"]+"\} (\d+)$/.exec(l)
      if (b) series.set(b[1]!, [...(series.get(b[1]!) ?? []), Number(b[2])])
    }
    for (const [labels, counts] of series) {
      for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1]!)
      expect(text).toContain(`edgeless_handler_duration_seconds_count{${labels}} ${counts.at(-1)}`)
    }
    expect(toPrometheus(m.snapshot(), { labels: { node: 'n1' } })).toMatch(/^edgeless_instances\{function="ponger",node="n1"\} 1$/m)
    m.close()
  }, 30_000)
})

// ---- OpenTelemetry ------------------------------------------------------------------------

describe('exportToOpenTelemetry', () => {
  interface Recorded {
    name: string
    options: { startTime?: number; attributes?: Record<string, SpanAttributeValue>; kind?: number } | undefined
    attrs: Record<string, SpanAttributeValue>
    status?: { code: number; message?: string }
    end?: number
  }

  test('makes a span per handled message, through any tracer with the OTel shape', async () => {
    const spans: Recorded[] = []
    const tracer = {
      startSpan(name: string, options?: Recorded['options']) {
        const rec: Recorded = { name, options, attrs: { ...options?.attributes } }
        spans.push(rec)
        return {
          setAttribute: (k: string, v: SpanAttributeValue) => {
            rec.attrs[k] = v
          },
          setStatus: (s: { code: number; message?: string }) => {
            rec.status = s
          },
          end: (t?: number) => {
            rec.end = t
          },
        }
      },
    }
    const rt = runtime()
    expect(() => exportToOpenTelemetry(rt, {} as never)).toThrow(/needs \{ tracer \}/)
    const stop = exportToOpenTelemetry(rt, { tracer, attributes: { 'service.name': 'edgeless-test' } })
    const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
    for (let i = 0; i < 3; i++) await pong.call('PING')
    const recorder = await rt.spawn({ name: 'recorder', fn: sink([]) })
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: recorder } })
    crashy.cast('panic')
    await until(() => spans.some((s) => s.name === 'crashy cast'), 5000, 'the crash span')
    stop()
    expect(rt.internals().observer).toBeNull()
    const calls = spans.filter((s) => s.name === 'ponger call')
    expect(calls).toHaveLength(3)
    for (const s of calls) {
      expect(s.attrs).toMatchObject({ 'edgeless.function': 'ponger', 'edgeless.kind': 'call', 'edgeless.ok': true, 'service.name': 'edgeless-test' })
      expect(s.attrs['edgeless.trace_id']).toEqual(expect.any(Number))
      // (epoch ms near 1.7e12 keep about 0.1 µs of precision)
      expect(s.end! - s.options!.startTime!).toBeCloseTo(s.attrs['edgeless.duration_ms'] as number, 2)
      expect(Math.abs(s.end! - Date.now())).toBeLessThan(60_000) // epoch milliseconds
      expect(s.options!.kind).toBe(1) // SERVER
    }
    expect(new Set(calls.map((s) => s.attrs['edgeless.trace_id'])).size).toBe(3) // one request each
    expect(spans.find((s) => s.name === 'ponger init')).toBeDefined()
    const crash = spans.find((s) => s.name === 'crashy cast')!
    expect(crash.attrs['edgeless.ok']).toBe(false)
    expect(crash.status).toMatchObject({ code: 2 })
    const before = spans.length
    await pong.call('PING')
    expect(spans.length).toBe(before)
  }, 30_000)
})

// ---- the HTTP server and the CLI ----------------------------------------------------------

function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        body += d
      })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Read the first Server-Sent Event of `url`. */
function firstEvent(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        buf += d
        const m = /^data: (.*)$/m.exec(buf)
        if (m && buf.includes('\n\n', buf.indexOf('data: '))) {
          req.destroy()
          resolve(m[1]!)
        }
      })
    })
    req.on('error', (e) => {
      if (!/aborted|socket hang up/.test(e.message)) reject(e)
    })
    req.end()
  })
}

describe('startInspector', () => {
  test('serves the page, /state, /events and /metrics on 127.0.0.1', async () => {
    const rt = runtime()
    const inspector = await startInspector(rt)
    expect(inspector.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const wf = await rt.startWorkflow(PING_PONG)
    await wf.get('ponger')!.call('PING')
    // The pinger's first call, and its log line about the answer.
    await until(
      () => {
        const s = inspector.state()
        return (s.graphs[0]?.nodes.find((n) => n.name === 'ponger')?.messages ?? 0) >= 2 && s.logs.some((l) => l.text.startsWith('Got Reply'))
      },
      5000,
      'the first ping',
    )

    const page = await get(inspector.url)
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.body).toContain('<title>edgeless inspector</title>')
    expect(page.body).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/) // self-contained

    const state = await get(`${inspector.url}state`)
    expect(state.headers['content-type']).toBe('application/json; charset=utf-8')
    const st = JSON.parse(state.body) as InspectorState
    expect(st.nodeId).toBe(rt.nodeId)
    const g = st.graphs.find((x) => x.name === 'ping-pong/workflow')!
    expect(g.nodes.map((n) => [n.name, n.kind, n.classType, n.status])).toEqual([
      ['pinger', 'function', 'ping', 'running'],
      ['ponger', 'function', 'pong', 'running'],
    ])
    expect(g.edges).toEqual([{ from: 'pinger', to: 'ponger', alias: 'ponger' }])
    expect(g.nodes.find((n) => n.name === 'ponger')!.messages).toBeGreaterThanOrEqual(2)
    expect(st.logs.some((l) => l.name === 'pinger' && l.text.startsWith('Got Reply'))).toBe(true)
    expect(st.functions.find((f) => f.name === 'ponger')!.calls).toBeGreaterThanOrEqual(2)

    const ev = JSON.parse(await firstEvent(`${inspector.url}events`)) as InspectorState
    expect(ev.graphs[0]!.edges[0]!.alias).toBe('ponger')

    const metrics = await get(`${inspector.url}metrics`)
    expect(metrics.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(metrics.body).toMatch(/^edgeless_handler_duration_seconds_count\{function="ponger",handler="call"\} [1-9]\d*$/m)
    expect(metrics.body).toMatch(/^edgeless_instances\{function="pinger"\} 1$/m)

    expect((await get(`${inspector.url}nope`)).status).toBe(404)
    // DNS rebinding: a request for another host name is refused.
    expect((await get(`${inspector.url}state`, { host: 'evil.example' })).status).toBe(403)
    expect((await get(`${inspector.url}state`, { host: `localhost:${inspector.port}` })).status).toBe(200)

    await inspector.close()
    await inspector.close()
    expect(rt.internals().observer).toBeNull()
    await expect(get(inspector.url)).rejects.toThrow(/ECONNREFUSED/)
    await wf.stop()
  }, 30_000)

  test('a port in use is a resource-failed error that names the fix', async () => {
    const blocker: NetServer = createNetServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as { port: number }).port
    const rt = runtime()
    try {
      await expect(startInspector(rt, { port })).rejects.toMatchObject({
        code: 'resource-failed',
        message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port}: the port is in use\\. Pick another port`)),
      })
      expect(rt.internals().observer).toBeNull() // nothing left installed
    } finally {
      await new Promise((r) => blocker.close(r))
    }
    await expect(startInspector(rt, { port: 70000 })).rejects.toMatchObject({ code: 'invalid-argument' })
  })

  test('edgeless run --inspect serves the inspector while the workflow runs and closes it on stop', async () => {
    const out: string[] = []
    const err: string[] = []
    let url = ''
    const io = {
      out: (s: string) => out.push(s),
      err: (s: string) => {
        err.push(s)
        const m = /^edgeless: inspector at (http:\S+)$/.exec(s)
        if (m) url = m[1]!
      },
    }
    const running = main(['run', PING_PONG, '--inspect', '0', '--duration', '1500', '--log-level', 'warn'], io)
    await until(() => url !== '' && err.some((l) => l.includes('started')), 15_000, 'the inspector URL')
    const state = JSON.parse((await get(`${url}state`)).body) as InspectorState
    expect(await running).toBe(0)
    expect(state.graphs[0]!.nodes.map((n) => n.name)).toEqual(['pinger', 'ponger'])
    expect(err.findIndex((l) => l.startsWith('edgeless: inspector at'))).toBeLessThan(err.findIndex((l) => l.includes('started')))
    await expect(get(url)).rejects.toThrow(/ECONNREFUSED/) // closed on stop

    // --inspect=<port> and a bad port.
    const bad: string[] = []
    expect(await main(['run', PING_PONG, '--inspect=nope'], { out: () => {}, err: (s) => bad.push(s) })).toBe(2)
    expect(bad.join('\n')).toMatch(/--inspect must be an integer from 0 to 65535, got "nope"/)
  }, 30_000)

  test('edgeless run --inspect without a port uses 7007', async () => {
    // Skip quietly if something on this machine already holds 7007.
    const free = await new Promise<boolean>((r) => {
      const s = createNetServer()
        .once('error', () => r(false))
        .listen(7007, '127.0.0.1', () => s.close(() => r(true)))
    })
    if (!free) return
    const err: string[] = []
    const code = await main(['run', PING_PONG, '--inspect', '--duration', '300'], { out: () => {}, err: (s) => err.push(s) })
    expect(code).toBe(0)
    expect(err).toContain('edgeless: inspector at http://127.0.0.1:7007/')
  }, 30_000)
})

// ---- the live page in Chromium ------------------------------------------------------------

describe('the inspector page in Chromium', () => {
  let profile = ''
  let context: BrowserContext | undefined
  afterAll(async () => {
    await context?.close()
    if (profile) rmSync(profile, { recursive: true, force: true })
  })

  test('draws the workflow graph and updates it live', async () => {
    const rt = runtime()
    const inspector = await startInspector(rt)
    await rt.startWorkflow(PING_PONG)
    // Something outside the workflow too, that crashed once: the page shows crashes.
    const out: string[] = []
    const recorder = await rt.spawn({ name: 'recorder', fn: sink(out) })
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: recorder } })
    crashy.cast('hello')
    crashy.cast('panic')

    profile = mkdtempSync(join(tmpdir(), 'edgeless-inspector-chromium-'))
    context = await launchChromium(profile, { width: 1280, height: 900 })
    const page: Page = context.pages()[0] ?? (await context.newPage())
    const problems: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console.error: ${m.text()}`)
    })
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('requestfailed', (r) => {
      if (!r.url().endsWith('/events')) problems.push(`request failed: ${r.url()}`)
    })
    await page.goto(inspector.url)

    const pinger = page.locator('svg.wf g.node[data-name="pinger"]')
    await pinger.waitFor({ timeout: 10_000 })
    await page.locator('svg.wf g.node[data-name="ponger"]').waitFor()
    const edge = page.locator('svg.wf g.edge[data-from="pinger"][data-to="ponger"][data-alias="ponger"]')
    await edge.waitFor()
    expect(await edge.locator('text').textContent()).toBe('ponger')
    expect(await page.locator('svg.wf g.edge[data-from="crashy"][data-to="recorder"]').locator('text').textContent()).toBe('out')
    expect(await page.locator('#conn').textContent()).toBe('live')
    expect(await pinger.getAttribute('data-status')).toBe('running')

    // Numbers change while the workflow runs: the pinger handles a wakeup every second.
    const count = async () => Number(await page.locator('svg.wf g.node[data-name="pinger"]').getAttribute('data-messages'))
    const first = await count()
    await page.waitForFunction((n) => Number(document.querySelector('svg.wf g.node[data-name="pinger"]')?.getAttribute('data-messages')) > n, first, {
      timeout: 5000,
      polling: 100,
    })
    const second = await count()
    expect(second).toBeGreaterThan(first)
    expect(Number(await page.locator('#instances tr[data-name="pinger"] td[data-field="messages"]').textContent())).toBeGreaterThanOrEqual(second)
    expect(await page.locator('#logs').innerText()).toContain('Got Reply: PONG')
    await page.waitForFunction(() => (document.querySelector('#crashes')?.textContent ?? '').includes('crashy in handle_cast'), undefined, { timeout: 5000 })
    expect(await page.locator('#functions tr[data-function="ponger"]').count()).toBe(1)
    // Let the rate settle over a full second for the picture.
    await page.waitForFunction(() => Number(document.querySelector('#instances tr[data-name="pinger"] td[data-field="rate"]')?.textContent) > 0, undefined, {
      timeout: 5000,
      polling: 100,
    })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    expect(problems).toEqual([])

    // When the inspector closes, the page says so instead of freezing silently.
    await inspector.close()
    await page.waitForFunction(() => /reconnecting|disconnected|polling/.test(document.querySelector('#conn')?.textContent ?? ''), undefined, { timeout: 5000 })
  }, 60_000)
})
