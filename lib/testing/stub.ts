/**
 * Stubs: scripted JS functions that stand in for a workflow member and record what they
 * receive.
 * @packageDocumentation
 */
import { noReply, type CallResult, type CallReturn } from '../call-result'
import type { InstanceId } from '../ids'
import type { EdgeFunction, FunctionContext } from '../js-function'
import { toBytes, utf8, type Payload } from '../payload'

/** One message a {@link Stub} received. */
export interface Received {
  kind: 'cast' | 'call'
  from: InstanceId
  payload: Uint8Array
  /** The payload decoded as UTF-8 (lossy). */
  text: string
  /** Virtual time of arrival. */
  time: number
}

/**
 * How a stub answers calls: a function of the request, a list of answers used in order (the
 * last one repeats), or one fixed answer. A string or bytes is a reply; `noReply()` and
 * `err()` work too. Default: NoReply.
 */
export type StubScript =
  | ((msg: Uint8Array, text: string, from: InstanceId) => CallReturn | CallResult | Payload | undefined)
  | Array<CallReturn | Payload>
  | CallReturn
  | Payload

/**
 * A test double for a function or resource: it records every cast and call it receives and
 * answers calls from a script. It can also send, through its own output mapping.
 *
 * @example
 * ```ts
 * const sensor = kit.stub({ replies: ['12.5'] })
 * const wf = await kit.startWorkflow(spec, { replace: { sensor: sensor.fn } })
 * sensor.cast('output', '42.0')            // as if the sensor sent it
 * expect(sensor).toHaveReceivedCall('read')
 * ```
 */
export class Stub {
  readonly received: Received[] = []
  private ctx: FunctionContext | null = null
  private answered = 0

  /** @internal */
  constructor(
    private readonly script: StubScript | undefined,
    private readonly now: () => number,
    /** The run's seed and trace tail, for failure messages. @internal */
    readonly describeRun: () => string = () => '',
  ) {}

  /** The EdgeFunction to spawn or to pass in `replace` (a factory, so a restart gets it again). */
  readonly fn = (): EdgeFunction => ({
    handleInit: (_p, _s, ctx) => {
      this.ctx = ctx
    },
    handleCast: (from, payload) => {
      this.record('cast', from, payload)
    },
    handleCall: (from, payload) => {
      this.record('call', from, payload)
      return this.answer(payload, from)
    },
  })

  /** Payloads of the casts received, as text. */
  casts(): string[] {
    return this.received.filter((r) => r.kind === 'cast').map((r) => r.text)
  }

  /** Payloads of the calls received, as text. */
  calls(): string[] {
    return this.received.filter((r) => r.kind === 'call').map((r) => r.text)
  }

  /** Cast through the stub's output mapping, as the real function would. */
  cast(alias: string, payload: Payload): void {
    this.context().cast(alias, payload)
  }

  /** Call through the stub's output mapping. */
  call(alias: string, payload: Payload): Promise<CallResult> {
    return this.context().call(alias, payload)
  }

  private context(): FunctionContext {
    if (!this.ctx) throw new Error('The stub is not running yet: start the workflow (or spawn it) first.')
    return this.ctx
  }

  private record(kind: 'cast' | 'call', from: InstanceId, payload: Uint8Array): void {
    this.received.push({ kind, from, payload: payload.slice(), text: utf8(payload), time: this.now() })
  }

  private answer(payload: Uint8Array, from: InstanceId): CallReturn | CallResult {
    const s = this.script
    let a: CallReturn | CallResult | Payload | undefined
    if (typeof s === 'function') a = s(payload, utf8(payload), from)
    else if (Array.isArray(s)) a = s.length ? s[Math.min(this.answered, s.length - 1)] : undefined
    else a = s
    this.answered++
    if (a === undefined) return noReply()
    if (typeof a === 'string' || a instanceof Uint8Array) return { kind: 'reply', data: toBytes(a) }
    return a
  }
}
