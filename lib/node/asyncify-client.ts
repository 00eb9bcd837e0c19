/**
 * The main-thread side of asyncify in Node: sends each module to a worker thread
 * (lib/node/asyncify-worker.ts) and waits for the transformed bytes. One worker, started on
 * the first module that needs it, and ended after a few idle seconds (binaryen holds tens of
 * megabytes).
 * @packageDocumentation
 */
import { Worker } from 'node:worker_threads'
import { EdgelessError, type ErrorCode } from '../errors'
import { asyncifyInThread, type AsyncifyRunner } from '../wasm/asyncify'

/** Main thread → worker. @internal */
export interface AsyncifyRequest {
  id: number
  bytes: Uint8Array
  label: string
}
/** Worker → main thread: the bytes, or why not. @internal */
export type AsyncifyReply = { id: number; bytes: Uint8Array; error?: undefined } | { id: number; bytes?: undefined; error: { code?: string; message: string } }

/** How long an idle worker (and the binaryen it loaded) is kept for the next module. */
const IDLE_MS = 10_000

/** Where the built worker script is: next to this file in dist/, or in dist/ when running from sources. */
function workerUrl(): URL {
  const here = import.meta.url
  return here.endsWith('.ts') ? new URL('../../dist/asyncify-worker.js', here) : new URL('./asyncify-worker.js', here)
}

let worker: Worker | undefined
let seq = 0
let idle: ReturnType<typeof setTimeout> | undefined
const waiting = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void; bytes: Uint8Array; label: string }>()

function startWorker(): Worker {
  const w = new Worker(workerUrl())
  w.on('message', (m: AsyncifyReply) => {
    const job = waiting.get(m.id)
    if (!job) return
    waiting.delete(m.id)
    settled()
    if (m.error) job.reject(new EdgelessError((m.error.code ?? 'invalid-module') as ErrorCode, m.error.message))
    else job.resolve(m.bytes)
  })
  // The script could not start (a bundler left dist/asyncify-worker.js behind, say): the jobs
  // run in this thread instead, and fail with that thread's reason if they cannot either.
  w.on('error', (e) => {
    if (worker === w) worker = undefined
    const jobs = [...waiting.values()]
    waiting.clear()
    settled()
    for (const job of jobs) {
      asyncifyInThread(job.bytes, job.label).then(job.resolve, (inThread: Error) => {
        job.reject(
          new EdgelessError(
            'load-failed',
            `Could not prepare ${job.label} for blocking calls: the asyncify worker (${workerUrl().href}) failed: ${e.message}; and in this thread: ${inThread.message}`,
            {},
            { cause: e },
          ),
        )
      })
    }
  })
  w.on('exit', () => {
    if (worker === w) worker = undefined
  })
  return w
}

/** Keep the process alive while a module is being prepared, not while the worker idles. */
function settled(): void {
  if (waiting.size > 0 || !worker) return
  worker.unref()
  clearTimeout(idle)
  const w = worker
  idle = setTimeout(() => {
    if (worker === w && waiting.size === 0) {
      worker = undefined
      void w.terminate()
    }
  }, IDLE_MS)
  idle.unref?.()
}

/**
 * Transform a module in the worker thread (started on first use).
 * @internal
 */
export const asyncifyInWorker: AsyncifyRunner = (bytes, label) =>
  new Promise((resolve, reject) => {
    clearTimeout(idle)
    try {
      worker ??= startWorker()
    } catch {
      // No worker here at all: this thread it is (its error, if any, names its own cause).
      asyncifyInThread(bytes, label).then(resolve, reject)
      return
    }
    worker.ref()
    const id = ++seq
    waiting.set(id, { resolve, reject, bytes, label })
    worker.postMessage({ id, bytes, label } satisfies AsyncifyRequest)
  })
