/**
 * Worker isolation in Node: a guest that runs its wasm instance in a worker thread, answers
 * its blocking calls through shared memory, and is terminated past its deadline.
 * @packageDocumentation
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'
import type { CallResult } from '../call-result'
import { EdgelessError, type ErrorCode } from '../errors'
import type { Guest, GuestHost } from '../guest'
import { isThenable } from '../guest'
import type { InstanceId } from '../ids'
import type { GuestLimits } from '../wasm/limits'
import type { FunctionModule } from '../wasm/loader'
import type { FromWorker, Invoke, WireError, WireResult, WorkerStart } from './worker-protocol'

/** Where the built worker script is: next to this file in dist/, or in dist/ when running from sources. */
function workerUrl(): URL {
  const here = import.meta.url
  return here.endsWith('.ts') ? new URL('../../dist/worker-entry.js', here) : new URL('./worker-entry.js', here)
}

function fromWire(e: WireError): Error {
  if (e.code) return new EdgelessError(e.code as ErrorCode, e.message, e.details ?? {})
  if (e.name === 'RuntimeError') return new WebAssembly.RuntimeError(e.message)
  if (e.name === 'RangeError') return new RangeError(e.message)
  const err = new Error(e.message)
  err.name = e.name
  return err
}

/**
 * A guest in its own worker thread (`isolation: 'worker'`). The actor on the main thread
 * drives it like any guest; the guest's host calls come back as messages and are carried out
 * by the actor, so ordering, call timeouts and cycle detection are the core's own. A call
 * from the guest blocks the worker until the answer is there. An invocation running past
 * `deadlineMs` terminates the worker: the invocation fails with a `deadline` trap and the
 * supervisor restarts the instance in a fresh worker.
 * @internal
 */
export class WorkerGuest implements Guest {
  private seq = 0
  private readonly waiting = new Map<
    number,
    { resolve: (v: WireResult | undefined) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >()
  private dead: Error | null = null
  private readonly flag: Int32Array

  private constructor(
    private readonly worker: Worker,
    private readonly host: GuestHost,
    private readonly replies: MessagePort,
    flag: SharedArrayBuffer,
    private readonly deadlineMs: number,
  ) {
    this.flag = new Int32Array(flag)
  }

  /** Start a worker for `fm` and wait until the guest is instantiated there. */
  static create(fm: FunctionModule, host: GuestHost, limits: GuestLimits, deadlineMs: number): Promise<WorkerGuest> {
    const flag = new SharedArrayBuffer(4)
    const { port1, port2 } = new MessageChannel()
    const start: WorkerStart = { module: fm.module, name: host.name, node: host.id.node, fn: host.id.function, limits, flag, replies: port2 }
    const worker = new Worker(workerUrl(), { workerData: start, transferList: [port2] })
    // An idle worker must not keep the process alive; the runtime's timers do that.
    worker.unref()
    const g = new WorkerGuest(worker, host, port1, flag, deadlineMs)
    return new Promise((resolve, reject) => {
      const onStart = (m: FromWorker) => {
        if (m.t === 'ready') {
          worker.off('message', onStart)
          worker.on('message', (x: FromWorker) => g.onMessage(x))
          resolve(g)
        } else if (m.t === 'failed-start') {
          worker.off('message', onStart)
          void worker.terminate()
          reject(fromWire(m.error))
        }
      }
      worker.on('message', onStart)
      worker.once('error', (e) => {
        g.die(e)
        reject(e)
      })
      worker.once('exit', (code) => g.die(new EdgelessError('trap', `The worker of "${host.name}" exited (code ${code}).`, { trap: 'other' })))
    })
  }

  init(payload: Uint8Array | undefined, state: Uint8Array | undefined): Promise<void> {
    return this.invoke({ seq: 0, op: 'init', payload, state }).then(() => undefined)
  }

  cast(src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): Promise<void> {
    return this.invoke({ seq: 0, op: 'cast', srcNode: src.node, srcFn: src.function, srcBytes, msg }).then(() => undefined)
  }

  call(src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): Promise<CallResult> {
    return this.invoke({ seq: 0, op: 'call', srcNode: src.node, srcFn: src.function, srcBytes, msg }).then((r) => {
      if (!r) return { kind: 'noreply' }
      if (r.kind === 'err') return { kind: 'err', error: new EdgelessError(r.code as ErrorCode, r.message) }
      return r
    })
  }

  stop(): Promise<void> {
    return this.invoke({ seq: 0, op: 'stop' }).then(() => undefined)
  }

  dispose(): void {
    this.die(new EdgelessError('instance-stopped', `The worker of "${this.host.name}" was released.`))
    void this.worker.terminate()
  }

  private invoke(m: Invoke): Promise<WireResult | undefined> {
    if (this.dead) return Promise.reject(this.dead)
    const seq = ++this.seq
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.overDeadline(seq), this.deadlineMs)
      this.waiting.set(seq, { resolve, reject, timer })
      this.worker.postMessage({ ...m, seq })
    })
  }

  private overDeadline(seq: number): void {
    if (!this.waiting.has(seq)) return
    const err = new EdgelessError(
      'trap',
      `function "${this.host.name}" ran longer than its ${this.deadlineMs} ms deadline (an endless loop with fuel off, or a stuck host call); its worker was terminated. Raise deadlineMs, or fix the function; the supervisor restarts it in a fresh worker.`,
      { name: this.host.name, trap: 'deadline', deadlineMs: this.deadlineMs },
    )
    this.die(err)
    void this.worker.terminate()
  }

  private die(e: Error): void {
    if (this.dead) return
    this.dead = e
    // A call the worker may still be blocked on is released (its answer is moot).
    Atomics.store(this.flag, 0, 1)
    Atomics.notify(this.flag, 0)
    for (const [, w] of this.waiting) {
      clearTimeout(w.timer)
      w.reject(e)
    }
    this.waiting.clear()
  }

  private onMessage(m: FromWorker): void {
    const h = this.host
    switch (m.t) {
      case 'done':
      case 'fail': {
        const w = this.waiting.get(m.seq)
        if (!w) return
        this.waiting.delete(m.seq)
        clearTimeout(w.timer)
        if (m.t === 'done') w.resolve(m.result)
        else w.reject(fromWire(m.error))
        return
      }
      case 'cast':
        h.cast(m.alias, m.payload)
        return
      case 'castRaw':
        h.castRaw({ node: m.node, function: m.fn }, m.payload)
        return
      case 'delayed':
        h.delayedCast(m.ms, m.alias, m.payload)
        return
      case 'sync':
        h.sync(m.payload)
        return
      case 'log':
        h.log(m.level, m.target, m.text)
        return
      case 'invalidAlias':
        h.invalidAlias(m.op, m.bytes)
        return
      case 'cannotSuspend':
        h.cannotSuspend()
        return
      case 'call':
      case 'callRaw': {
        const r = m.t === 'call' ? h.call(m.alias, m.payload) : h.callRaw({ node: m.node, function: m.fn }, m.payload)
        const answer = (v: CallResult) => {
          if (this.dead) return
          this.replies.postMessage(v.kind === 'err' ? { kind: 'err', code: v.error.code, message: v.error.message } : v)
          Atomics.store(this.flag, 0, 1)
          Atomics.notify(this.flag, 0)
        }
        if (isThenable<CallResult>(r)) void Promise.resolve(r).then(answer)
        else answer(r)
        return
      }
      default:
        return
    }
  }
}

/** The Node implementation of RuntimeOptions.isolate. */
export const isolateInWorker = (fm: FunctionModule, host: GuestHost, limits: GuestLimits, deadlineMs: number): Promise<Guest> =>
  WorkerGuest.create(fm, host, limits, deadlineMs)
