/**
 * The worker thread that prepares guests for blocking calls (asyncify) in Node: it loads
 * binaryen once and transforms the modules the main thread sends (lib/node/asyncify-client.ts).
 * A worker loads binaryen, an ES module, whatever sandbox the main thread runs in (jest's
 * CommonJS VM refuses it there), and the seconds of the pass leave the main thread free.
 * @internal
 * @packageDocumentation
 */
import { parentPort } from 'node:worker_threads'
import { EdgelessError } from '../errors'
import { asyncifyInThread } from '../wasm/asyncify'
import type { AsyncifyReply, AsyncifyRequest } from './asyncify-client'

const port = parentPort!
port.on('message', (m: AsyncifyRequest) => {
  asyncifyInThread(m.bytes, m.label).then(
    (bytes) => port.postMessage({ id: m.id, bytes } satisfies AsyncifyReply, [bytes.buffer as ArrayBuffer]),
    (e: unknown) => {
      const err = e as Error
      const code = e instanceof EdgelessError ? e.code : undefined
      port.postMessage({ id: m.id, error: { code, message: err?.message ?? String(e) } } satisfies AsyncifyReply)
    },
  )
})
