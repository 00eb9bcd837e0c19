/**
 * The worker side of `isolation: 'worker'`: instantiates the guest in this thread and turns
 * its host imports into messages to the actor on the main thread. A call blocks this thread
 * (Atomics.wait) until the main thread has the answer, so the guest needs no asyncify here.
 * @internal
 * @packageDocumentation
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { errResult, type CallResult } from '../call-result'
import { EdgelessError } from '../errors'
import type { GuestHost } from '../guest'
import { instanceIdBytes, type InstanceId } from '../ids'
import { WasmGuest } from '../wasm/instance'
import { loadFunctionModule } from '../wasm/loader'
import type { FromWorker, Invoke, WireError, WireResult, WorkerStart } from './worker-protocol'

const start = workerData as WorkerStart
const port = parentPort!
const flag = new Int32Array(start.flag)
const post = (m: FromWorker) => port.postMessage(m)

function wireError(e: unknown): WireError {
  if (e instanceof EdgelessError) return { name: e.name, message: e.message, code: e.code, details: { ...e.details } }
  const err = e as Error
  return { name: err?.constructor?.name === 'RuntimeError' ? 'RuntimeError' : (err?.name ?? 'Error'), message: err?.message ?? String(e) }
}

/** Block until the main thread answers the call just posted. */
function awaitAnswer(): CallResult {
  Atomics.wait(flag, 0, 0)
  Atomics.store(flag, 0, 0)
  const got = receiveMessageOnPort(start.replies)
  const r = got?.message as WireResult | undefined
  if (!r) return errResult('instance-stopped', 'The call was abandoned (the instance is stopping).')
  if (r.kind === 'err') return errResult(r.code as 'call-err', r.message)
  return r as CallResult
}

const id: InstanceId = { node: start.node, function: start.fn }
const host: GuestHost = {
  name: start.name,
  id,
  idBytes: instanceIdBytes(id),
  cast: (alias, payload) => post({ t: 'cast', alias, payload }),
  castRaw: (t, payload) => post({ t: 'castRaw', node: t.node, fn: t.function, payload }),
  call: (alias, payload) => {
    post({ t: 'call', alias, payload })
    return awaitAnswer()
  },
  callRaw: (t, payload) => {
    post({ t: 'callRaw', node: t.node, fn: t.function, payload })
    return awaitAnswer()
  },
  delayedCast: (ms, alias, payload) => post({ t: 'delayed', ms, alias, payload }),
  sync: (payload) => post({ t: 'sync', payload }),
  log: (level, target, text) => post({ t: 'log', level, target, text }),
  invalidAlias: (op, bytes) => post({ t: 'invalidAlias', op, bytes }),
  cannotSuspend: () => post({ t: 'cannotSuspend' }),
}

const toWire = (r: CallResult): WireResult => (r.kind === 'err' ? { kind: 'err', code: r.error.code, message: r.error.message } : r)

async function main(): Promise<void> {
  let guest: WasmGuest
  try {
    // The module arrives compiled, with its fuel meter and memory cap already in it.
    const fm = await loadFunctionModule(
      start.module,
      async () => {
        throw new Error('no loader in a worker')
      },
      `function "${start.name}"`,
    )
    guest = await WasmGuest.create(fm, host, 0, start.limits)
  } catch (e) {
    post({ t: 'failed-start', error: wireError(e) })
    return
  }
  port.on('message', (m: Invoke) => {
    try {
      let r: unknown
      switch (m.op) {
        case 'init':
          r = guest.init(m.payload, m.state)
          break
        case 'cast':
          r = guest.cast({ node: m.srcNode, function: m.srcFn }, m.srcBytes, m.msg)
          break
        case 'call':
          r = guest.call({ node: m.srcNode, function: m.srcFn }, m.srcBytes, m.msg)
          break
        case 'stop':
          r = guest.stop()
          break
      }
      // Calls never suspend here (they block), so every handler finishes synchronously.
      post(m.op === 'call' ? { t: 'done', seq: m.seq, result: toWire(r as CallResult) } : { t: 'done', seq: m.seq })
    } catch (e) {
      post({ t: 'fail', seq: m.seq, error: wireError(e) })
    }
  })
  post({ t: 'ready' })
}

void main()
