/**
 * The live inspector (Node, `node:http`): a small HTTP server on 127.0.0.1 serving
 * - `/` a self-contained page: the workflows as graphs, each instance's lifecycle state,
 *   mailbox depth, message count and rate, recent logs, crashes and activity, live;
 * - `/events` Server-Sent Events: the state JSON every 500 ms (what the page listens to);
 * - `/state` the same JSON, once (the page polls it if EventSource fails);
 * - `/metrics` Prometheus text (format 0.0.4) from `collectMetrics`.
 * @packageDocumentation
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EdgelessError } from '../../errors'
import { PROMETHEUS_CONTENT_TYPE, toPrometheus } from '../../inspect/prometheus'
import type { Runtime } from '../../runtime/runtime'
import { InspectorModel, type InspectorState } from './model'
import { INSPECTOR_PAGE } from './page'

/** Options of {@link startInspector}. */
export interface InspectorOptions {
  /** TCP port; `0` (default) picks a free one (read it from `url`). */
  port?: number
  /** Interface to listen on. Default `127.0.0.1`: the inspector shows logs and payload sizes, so exposing it is a decision. */
  host?: string
  /** How often `/events` pushes the state, in ms. Default 500. */
  intervalMs?: number
  /**
   * How the caller sets the port, for error messages: `'api'` (default: "the `port`
   * option") or `'cli'` ("--inspect <port>"), so a message speaks the language of where the
   * user is.
   */
  portSetting?: 'api' | 'cli'
}

/** A running inspector. */
export interface Inspector {
  /** Where the page is, e.g. `http://127.0.0.1:7007/`. */
  readonly url: string
  readonly port: number
  /** The current state, as `/state` serves it. */
  state(): InspectorState
  /** Stop serving and stop observing the runtime (it is back to zero cost). Idempotent. */
  close(): Promise<void>
  /** The model behind the pages (tests). @internal */
  readonly model: InspectorModel
}

/** JSON of the state, or the reason it could not be written (the handler must not throw). */
function stateJson(model: InspectorModel): { json: string } | { error: string } {
  try {
    return { json: JSON.stringify(model.state()) }
  } catch (e) {
    return {
      error: `The inspector could not serialise its state: ${(e as Error)?.message ?? String(e)}. This is a bug in edgeless (guest data is bounded before it is kept); the inspector keeps serving.\n`,
    }
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]'])

/**
 * Start the live inspector of `runtime`. Binds 127.0.0.1 by default; a port in use rejects
 * with `resource-failed` naming the fix.
 *
 * @example
 * ```ts
 * const inspector = await startInspector(rt, { port: 7007 })
 * console.error(`inspector: ${inspector.url}`)
 * // ...
 * await inspector.close()
 * ```
 */
export async function startInspector(runtime: Runtime, options: InspectorOptions = {}): Promise<Inspector> {
  const port = options.port ?? 0
  const host = options.host ?? '127.0.0.1'
  const intervalMs = options.intervalMs ?? 500
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new EdgelessError('invalid-argument', `startInspector: port must be an integer from 0 to 65535, got ${port}.`)
  if (!(intervalMs >= 50)) throw new EdgelessError('invalid-argument', `startInspector: intervalMs must be at least 50, got ${intervalMs}.`)
  const loopbackOnly = LOOPBACK.has(host)
  const model = new InspectorModel(runtime)
  const clients = new Set<ServerResponse>()
  let pusher: ReturnType<typeof setInterval> | null = null

  const push = () => {
    if (clients.size === 0) return
    const s = stateJson(model)
    // A state that cannot be written is skipped with an SSE comment: the page keeps the last one.
    const frame = 'json' in s ? `data: ${s.json}\n\n` : `: ${s.error.replace(/\n/g, ' ')}\n\n`
    for (const res of clients) res.write(frame)
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    try {
      handle(req, res)
    } catch (e) {
      // Nothing a request does may take the host down: answer 500 and keep serving.
      const body = `The inspector failed to answer ${req.url ?? ''}: ${(e as Error)?.message ?? String(e)}\n`
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', body)
      else res.end()
    }
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // Bound to loopback, the page must only answer loopback host names: a web page elsewhere
    // that rebinds its DNS name to 127.0.0.1 must not read the state.
    if (loopbackOnly) {
      const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
      if (!LOOPBACK.has(hostHeader))
        return send(res, 403, 'text/plain; charset=utf-8', 'Forbidden: the inspector answers requests for localhost / 127.0.0.1 only.\n')
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return send(res, 405, 'text/plain; charset=utf-8', 'Method not allowed\n')
    }
    const path = (req.url ?? '/').split('?')[0]
    switch (path) {
      case '/':
      case '/index.html':
        return send(res, 200, 'text/html; charset=utf-8', INSPECTOR_PAGE, req.method === 'HEAD')
      case '/state': {
        const s = stateJson(model)
        if ('error' in s) return send(res, 500, 'text/plain; charset=utf-8', s.error)
        return send(res, 200, 'application/json; charset=utf-8', s.json, req.method === 'HEAD')
      }
      case '/metrics':
        return send(res, 200, PROMETHEUS_CONTENT_TYPE, toPrometheus(model.metrics.snapshot()), req.method === 'HEAD')
      case '/events': {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-content-type-options': 'nosniff',
        })
        if (req.method === 'HEAD') return res.end()
        const first = stateJson(model)
        res.write(`retry: 1000\n\n${'json' in first ? `data: ${first.json}` : `: ${first.error.replace(/\n/g, ' ')}`}\n\n`)
        clients.add(res)
        pusher ??= setInterval(push, intervalMs)
        req.on('close', () => {
          clients.delete(res)
          if (clients.size === 0 && pusher) {
            clearInterval(pusher)
            pusher = null
          }
        })
        return
      }
      case '/favicon.ico':
        res.writeHead(204).end()
        return
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'Not found. The inspector serves /, /state, /events and /metrics.\n')
    }
  }

  const server = createServer(onRequest)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (e) {
    model.close()
    const code = (e as NodeJS.ErrnoException).code
    const cli = options.portSetting === 'cli'
    const pick = cli ? '--inspect <port>, or --inspect 0 for any free port' : 'the `port` option of startInspector, or port: 0 for any free port'
    const message =
      code === 'EADDRINUSE'
        ? `The inspector cannot listen on ${host}:${port}: the port is in use. Pick another port (${pick}), or stop the program that uses it.`
        : code === 'EACCES'
          ? `The inspector has no permission to listen on ${host}:${port}; use a port above 1023 (${cli ? '--inspect <port>' : 'the `port` option'}).`
          : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
            ? `The inspector cannot listen on address ${host} (${code}); use an address of this machine, e.g. 127.0.0.1.`
            : `The inspector cannot listen on ${host}:${port}: ${(e as Error).message}`
    throw new EdgelessError('resource-failed', message, { host, port, code }, { cause: e })
  }
  server.on('error', () => {
    /* a failing connection must not crash the host */
  })
  const bound = server.address() as AddressInfo
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
  const url = `http://${shown}:${bound.port}/`
  let closing: Promise<void> | null = null

  return {
    url,
    port: bound.port,
    state: () => model.state(),
    model,
    close(): Promise<void> {
      closing ??= (async () => {
        if (pusher) clearInterval(pusher)
        pusher = null
        // One last frame, so an open page shows the final state, then end the streams.
        push()
        for (const res of clients) res.end()
        clients.clear()
        model.close()
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
      })()
      return closing
    },
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), 'x-content-type-options': 'nosniff' })
  res.end(headOnly ? undefined : body)
}
