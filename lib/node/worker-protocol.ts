/**
 * Messages between a worker-isolated guest (lib/node/worker-entry.ts) and its actor on the
 * main thread (lib/node/worker-guest.ts). Everything is structured-cloned; payloads are
 * Uint8Arrays.
 * @internal
 */
import type { MessagePort } from 'node:worker_threads'
import type { GuestLimits } from '../wasm/limits'

/** What the worker starts with. */
export interface WorkerStart {
  module: WebAssembly.Module
  name: string
  node: string
  fn: string
  limits: GuestLimits
  /** Int32Array over this: [0] = 1 when a call's answer waits on `replies`. */
  flag: SharedArrayBuffer
  replies: MessagePort
}

/** Main → worker: run one handler. */
export type Invoke =
  | { seq: number; op: 'init'; payload: Uint8Array | undefined; state: Uint8Array | undefined }
  | { seq: number; op: 'cast' | 'call'; srcNode: string; srcFn: string; srcBytes: Uint8Array; msg: Uint8Array }
  | { seq: number; op: 'stop' }

/** A call result as it crosses the thread boundary. */
export type WireResult = { kind: 'reply'; data: Uint8Array } | { kind: 'noreply' } | { kind: 'err'; code: string; message: string }

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string
  message: string
  /** Set for EdgelessError. */
  code?: string
  details?: Record<string, unknown>
}

/** Worker → main. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'failed-start'; error: WireError }
  | { t: 'done'; seq: number; result?: WireResult }
  | { t: 'fail'; seq: number; error: WireError }
  | { t: 'cast'; alias: string; payload: Uint8Array }
  | { t: 'castRaw'; node: string; fn: string; payload: Uint8Array }
  | { t: 'call'; alias: string; payload: Uint8Array }
  | { t: 'callRaw'; node: string; fn: string; payload: Uint8Array }
  | { t: 'delayed'; ms: number; alias: string; payload: Uint8Array }
  | { t: 'sync'; payload: Uint8Array }
  | { t: 'log'; level: number; target: string; text: string }
  | { t: 'invalidAlias'; op: 'cast' | 'call' | 'delayed_cast'; bytes: Uint8Array }
  | { t: 'cannotSuspend' }
