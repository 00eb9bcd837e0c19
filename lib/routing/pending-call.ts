/**
 * One outstanding call and its timeout.
 * @packageDocumentation
 */
import { errResult, NOREPLY_RESULT, type CallResult } from '../call-result'
import type { Clock } from '../clock'
import type { RuntimeEvents } from '../events'
import type { CallAnswer } from './message'
import type { Recipient } from './transport'

/** What a pending call reports to and times out with (the router). @internal */
export interface CallEnv {
  readonly clock: Clock
  emit<K extends keyof RuntimeEvents>(name: K, ev: RuntimeEvents[K][0]): void
}

/**
 * One outstanding call: who waits (an actor, or the host application when `caller` is
 * null), on whom, until when. It is settled exactly once — by the callee's answer, a
 * crash, a refusal or the timeout; an answer after the timeout is reported and dropped.
 * While it is open, `caller.waitingOn` points at the callee: that edge is what cycle
 * detection walks.
 * @internal
 */
export class PendingCall implements CallAnswer {
  settled = false
  result: CallResult = NOREPLY_RESULT
  private timedOut = false
  private resolve: ((r: CallResult) => void) | null = null
  private timer: unknown = null

  constructor(
    private readonly sys: CallEnv,
    public caller: Recipient | null,
    public target: Recipient,
    private timeoutMs: number,
  ) {}

  /**
   * Make a call that settled without ever waiting (a synchronous one: no timer, no promise)
   * open again for the next synchronous call, which the router runs with the same object.
   */
  reuse(caller: Recipient | null, target: Recipient, timeoutMs: number): void {
    this.caller = caller
    this.target = target
    this.timeoutMs = timeoutMs
    this.settled = false
    this.result = NOREPLY_RESULT
  }

  settle(r: CallResult): void {
    if (this.settled) {
      if (this.timedOut) {
        this.sys.emit('late-reply', { ...(this.caller ? { caller: this.caller.name } : {}), target: this.target.name, targetInstance: this.target.id })
      }
      return
    }
    this.settled = true
    this.result = r
    if (this.timer !== null) this.sys.clock.clearTimeout(this.timer)
    if (this.caller && this.caller.waitingOn === this.target) this.caller.waitingOn = null
    this.resolve?.(r)
  }

  /** The answer as a promise; arms the timeout if the call is still open. */
  wait(): Promise<CallResult> {
    if (this.settled) return Promise.resolve(this.result)
    if (this.caller) this.caller.waitingOn = this.target
    if (Number.isFinite(this.timeoutMs)) this.timer = this.sys.clock.setTimeout(() => this.expire(), this.timeoutMs)
    return new Promise<CallResult>((res) => {
      this.resolve = res
    })
  }

  private expire(): void {
    if (this.settled) return
    const r = errResult(
      'call-timeout',
      `The call from ${this.caller ? `"${this.caller.name}"` : 'the host'} to "${this.target.name}" got no answer within ${this.timeoutMs} ms. Raise callTimeoutMs, or make the callee answer sooner.`,
      { target: this.target.name, timeoutMs: this.timeoutMs },
    )
    this.timedOut = true
    this.sys.emit('call-timeout', {
      ...(this.caller ? { caller: this.caller.name, callerInstance: this.caller.id } : {}),
      target: this.target.name,
      targetInstance: this.target.id,
      timeoutMs: this.timeoutMs,
      error: r.error,
    })
    this.settle(r)
  }
}
