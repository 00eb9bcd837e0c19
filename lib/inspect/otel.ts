/**
 * OpenTelemetry export without an OpenTelemetry dependency: hand in any tracer with
 * OTel's `startSpan(name, options) → span` shape (the `Tracer` of `@opentelemetry/api`
 * fits) and every handled message becomes a span.
 *
 * Platform-neutral (no `node:*`).
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import type { InvocationKind, Observer } from '../observer'
import type { Runtime } from '../runtime/runtime'

/** An attribute value, as OpenTelemetry accepts them. */
export type SpanAttributeValue = string | number | boolean

/** The part of an OpenTelemetry `Span` used here. */
export interface SpanLike {
  setAttribute(key: string, value: SpanAttributeValue): unknown
  /** OTel's `setStatus({ code, message })` (code 2 is ERROR); optional. */
  setStatus?(status: { code: number; message?: string }): unknown
  /** `endTime` in ms since the epoch. */
  end(endTime?: number): unknown
}

/** The part of an OpenTelemetry `Tracer` used here (`trace.getTracer('edgeless')` fits). */
export interface TracerLike {
  startSpan(name: string, options?: { startTime?: number; attributes?: Record<string, SpanAttributeValue>; kind?: number }): SpanLike
}

/** Options of {@link exportToOpenTelemetry}. */
export interface OpenTelemetryOptions {
  /** Where spans go. */
  tracer: TracerLike
  /** Which handlers become spans. Default all: init, cast, call, stop. */
  kinds?: readonly InvocationKind[]
  /** Attributes added to every span (e.g. `{ 'service.instance.id': rt.nodeId }`). */
  attributes?: Record<string, SpanAttributeValue>
}

/** OTel's SpanKind.INTERNAL / SERVER / CONSUMER. */
const SPAN_KIND = { init: 0, stop: 0, call: 1, cast: 4 } as const

const epochNow: () => number =
  typeof performance !== 'undefined' && typeof performance.timeOrigin === 'number' ? () => performance.timeOrigin + performance.now() : () => Date.now()

/**
 * Turn every handled message into an OpenTelemetry span: name `<function> <kind>`, start and
 * end times of the handler, attributes `edgeless.function`, `edgeless.kind`,
 * `edgeless.trace_id`, `edgeless.duration_ms`, `edgeless.instance_id`, `edgeless.ok`
 * (a crash also sets the span's status to ERROR). Messages of one request share
 * `edgeless.trace_id`. Returns the function that stops the export.
 *
 * The OpenTelemetry SDK is not a dependency of edgeless: pass your own tracer.
 *
 * @example
 * ```ts
 * import { trace } from '@opentelemetry/api'
 * const stop = exportToOpenTelemetry(rt, { tracer: trace.getTracer('edgeless') })
 * ```
 */
export function exportToOpenTelemetry(runtime: Runtime, options: OpenTelemetryOptions): () => void {
  const tracer = options?.tracer
  if (!tracer || typeof tracer.startSpan !== 'function') {
    throw new EdgelessError(
      'invalid-argument',
      'exportToOpenTelemetry needs { tracer }: an OpenTelemetry Tracer (e.g. trace.getTracer("edgeless") from @opentelemetry/api), or any object with startSpan(name, options) returning { setAttribute, end }.',
    )
  }
  const kinds = new Set<InvocationKind>(options.kinds ?? ['init', 'cast', 'call', 'stop'])
  const common = options.attributes ?? {}
  const observer: Observer = {
    finished(a, kind, trace, ms, ok) {
      if (!kinds.has(kind)) return
      const end = epochNow()
      try {
        const span = tracer.startSpan(`${a.name} ${kind}`, {
          startTime: end - ms,
          kind: SPAN_KIND[kind],
          attributes: {
            ...common,
            'edgeless.function': a.name,
            'edgeless.kind': kind,
            'edgeless.trace_id': trace,
            'edgeless.duration_ms': ms,
            'edgeless.instance_id': a.id.function,
            'edgeless.ok': ok,
          },
        })
        // Set as attributes too: some tracers ignore the ones given at start.
        span.setAttribute('edgeless.function', a.name)
        span.setAttribute('edgeless.kind', kind)
        span.setAttribute('edgeless.trace_id', trace)
        span.setAttribute('edgeless.duration_ms', ms)
        if (!ok) span.setStatus?.({ code: 2, message: `${a.name} crashed in handle_${kind}` })
        span.end(end)
      } catch (e) {
        // A tracer that throws must not reach the mailbox loop.
        queueMicrotask(() => {
          throw e
        })
      }
    },
  }
  return runtime.observe(observer)
}
