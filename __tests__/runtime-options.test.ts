import { jest } from '@jest/globals'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { Runtime as CoreRuntime, reply, utf8, type Clock } from '../lib/index'
import { Runtime } from '../lib/node/index'
import { collect, testRuntime, wasm, wasmPath } from './helpers/fixtures'

/** A clock whose time moves only when the test says so. */
function manualClock() {
  let now = 0
  const timers: Array<{ at: number; fn: () => void; id: number }> = []
  let next = 1
  const clock: Clock = {
    now: () => now,
    setTimeout(fn, ms) {
      const id = next++
      timers.push({ at: now + ms, fn, id })
      return id
    },
    clearTimeout(h) {
      const i = timers.findIndex((t) => t.id === h)
      if (i >= 0) timers.splice(i, 1)
    },
  }
  const advance = (ms: number) => {
    now += ms
    for (;;) {
      timers.sort((a, b) => a.at - b.at || a.id - b.id)
      const t = timers[0]
      if (!t || t.at > now) break
      timers.shift()
      t.fn()
    }
  }
  return { clock, advance, pending: () => timers.length }
}

const tick = () => new Promise((r) => setTimeout(r, 5))

describe('injectable clock', () => {
  test('delayed casts fire only when the injected clock reaches them', async () => {
    const { clock, advance, pending } = manualClock()
    const rt = testRuntime({ clock })
    const seen: string[] = []
    const sink = await rt.spawn({
      name: 'sink',
      fn: {
        handleCast: (_s, m) => {
          seen.push(utf8(m))
        },
      },
    })
    const counter = await rt.spawn({ name: 'counter', module: wasmPath('counter'), outputs: { output: sink }, initPayload: '0' })
    await tick()
    expect(seen).toEqual(['1'])
    expect(pending()).toBe(1) // counter's 1000 ms self-wakeup
    advance(999)
    await tick()
    expect(seen).toEqual(['1'])
    advance(1)
    await tick()
    expect(seen).toEqual(['1', '2'])
    advance(3000)
    await tick()
    expect(seen).toEqual(['1', '2', '3']) // one timer at a time: each cast schedules the next
    await rt.stop(counter)
    expect(pending()).toBe(0) // stop cancelled the pending timer
    await rt.shutdown()
  })

  test('call timeouts run on the injected clock', async () => {
    const { clock, advance } = manualClock()
    const rt = testRuntime({ clock, callTimeoutMs: 100, stopTimeoutMs: 10 })
    const never = await rt.spawn({ name: 'never', fn: { handleCall: () => new Promise(() => {}) } })
    let result: unknown
    void rt.call(never, 'x').then((r) => {
      result = r
    })
    await tick()
    expect(result).toBeUndefined() // real time passes, virtual time does not
    advance(100)
    await tick()
    expect(result).toMatchObject({ kind: 'err', error: { code: 'call-timeout' } })
    // The stop timeout is on the same clock: shutdown completes only as virtual time passes.
    let stopped = false
    void rt.shutdown().then(() => {
      stopped = true
    })
    await tick()
    expect(stopped).toBe(false)
    for (let i = 0; i < 10 && !stopped; i++) {
      advance(10)
      await tick()
    }
    expect(stopped).toBe(true)
  })
})

describe('module sources', () => {
  test('bytes, ArrayBuffer, file path, file: URL, http: URL and a precompiled module all load', async () => {
    // (dense: false below: a precompiled module cannot be rewritten for dense memory.)
    const bytes = wasm('pong')
    const server = createServer((req, res) => {
      if (req.url === '/pong.wasm') {
        res.writeHead(200, { 'content-type': 'application/wasm' })
        res.end(bytes)
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const rt = testRuntime({ dense: false })
      const sources = [
        bytes,
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
        wasmPath('pong'),
        pathToFileURL(wasmPath('pong')),
        new URL(`${base}/pong.wasm`),
        `${base}/pong.wasm`,
        await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
      ]
      for (const module of sources) {
        const ref = await rt.spawn({ name: 'pong', module })
        const r = await ref.call('x')
        expect(r.kind === 'reply' && utf8(r.data)).toBe('PONG')
      }
      await expect(rt.load(`${base}/missing.wasm`)).rejects.toMatchObject({ code: 'load-failed' })
      await rt.shutdown()
      // The platform-neutral core has no file access and says so.
      const core = new CoreRuntime({ consoleLog: false })
      await expect(core.load(wasmPath('pong'))).rejects.toMatchObject({ code: 'load-failed', message: expect.stringContaining('loadSource') })
      const viaLoader = new CoreRuntime({ consoleLog: false, loadSource: async () => bytes })
      expect(utf8(((await (await viaLoader.spawn({ name: 'p', module: 'anything' })).call('x')) as { data: Uint8Array }).data)).toBe('PONG')
      await core.shutdown()
      await viaLoader.shutdown()
    } finally {
      server.close()
    }
  })
})

describe('console sink', () => {
  test('logs go to the console by default, filtered by level, and can be turned off', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => {})
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {})
    const error = jest.spyOn(console, 'error').mockImplementation(() => {})
    try {
      const rt = new Runtime()
      const f = await rt.spawn({
        name: 'talker',
        fn: {
          handleCall: (_s, m, ctx) => {
            ctx.log('info', `i:${utf8(m)}`)
            ctx.log('debug', 'hidden')
            ctx.log('error', 'bad')
            return reply('')
          },
        },
      })
      await f.call('x')
      expect(log.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringMatching(/^\[edgeless\] INFO talker\([0-9a-f]{8}\) talker: i:x$/)])
      expect(error.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringContaining('ERROR talker')])
      await rt.shutdown()
      log.mockClear()
      error.mockClear()
      const quiet = new Runtime({ consoleLog: false })
      const events = collect(quiet, 'log')
      const g = await quiet.spawn({
        name: 'talker',
        fn: {
          handleCall: (_s, _m, ctx) => {
            ctx.log('info', 'x')
            return reply('')
          },
        },
      })
      await g.call('x')
      expect(events).toHaveLength(1)
      expect(log).not.toHaveBeenCalled()
      await quiet.shutdown()
    } finally {
      log.mockRestore()
      warn.mockRestore()
      error.mockRestore()
    }
  })
})
