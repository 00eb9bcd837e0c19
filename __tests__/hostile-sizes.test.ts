// Guest-controlled sizes must not become host memory (issue 18, item 3): mailboxes and
// pending delayed casts are bounded in bytes as well as in count, replies are held to
// maxPayloadBytes like every other payload, a guest's alias is echoed only in part, and a
// memory of its own has a cap by default; an http-ingress's body limit is what fits a call,
// and its open connections are capped. Each bound is an event with its figures.
import { connect, type Socket } from 'node:net'
import { describe, expect, test } from '@jest/globals'
import { DEFAULT_MAX_MEMORY_BYTES, parseHttpRequest, reply, utf8, type EdgeFunction } from '../lib/node/index'
import { httpIngressResource, ingressAddress, MAX_CONNECTIONS, MAX_SYNC_BODY } from '../lib/node/resources/http-ingress'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

const MiB = 1024 * 1024

/** A JS function whose cast handler waits until released, so what is sent meanwhile queues up. */
function gate(): { fn: EdgeFunction; got: number[]; release: () => void } {
  let open!: () => void
  const opened = new Promise<void>((r) => {
    open = r
  })
  const got: number[] = []
  return {
    got,
    release: () => open(),
    fn: {
      handleCast: async (_s, m) => {
        got.push(m.length)
        await opened
      },
    },
  }
}

describe('mailboxes are bounded in bytes', () => {
  test('reject: a cast that would take the queued bytes over maxMailboxBytes is refused, with the figures', async () => {
    const rt = testRuntime({ quotas: { maxMailboxBytes: 4 * MiB } })
    const full = collect(rt, 'mailbox-full')
    const dead = collect(rt, 'dead-letter')
    const g = gate()
    const a = await rt.spawn({ name: 'slow', fn: g.fn })
    const mb = new Uint8Array(MiB)
    rt.cast(a, mb) // taken at once: the handler waits with it
    await until(() => g.got.length === 1, 2000, 'the first cast in the handler')
    for (let i = 0; i < 6; i++) rt.cast(a, mb)
    // 4 MiB fit in the mailbox; the 5th and 6th do not.
    expect(full.map((e) => [e.bytes, e.queuedBytes, e.maxBytes, e.policy])).toEqual([
      [MiB, 4 * MiB, 4 * MiB, 'reject'],
      [MiB, 4 * MiB, 4 * MiB, 'reject'],
    ])
    expect(dead.map((d) => d.reason.code)).toEqual(['mailbox-full', 'mailbox-full'])
    expect(dead[0]!.reason.message).toMatch(/4194304 of 4194304 bytes queued/)
    expect(dead[0]!.reason.message).toMatch(/quotas\.maxMailboxBytes/)
    expect(rt.inspect(a)?.mailbox).toBe(4)
    g.release()
    await until(() => g.got.length === 5, 2000, 'the queued casts')
    await rt.shutdown()
  })

  test('drop-oldest: the oldest queued casts make room; a message larger than the whole bound is refused', async () => {
    const rt = testRuntime({ quotas: { maxMailboxBytes: 4 * MiB }, overflow: 'drop-oldest' })
    const dead = collect(rt, 'dead-letter')
    const g = gate()
    const a = await rt.spawn({ name: 'slow', fn: g.fn })
    rt.cast(a, new Uint8Array(1))
    await until(() => g.got.length === 1, 2000, 'the first cast in the handler')
    for (let i = 0; i < 4; i++) rt.cast(a, new Uint8Array(MiB).fill(i))
    rt.cast(a, new Uint8Array(2 * MiB)) // drops the two oldest
    rt.cast(a, new Uint8Array(5 * MiB)) // can never fit: refused, nothing dropped for it
    expect(dead.map((d) => [d.payload.length, d.payload[0]])).toEqual([
      [MiB, 0],
      [MiB, 1],
      [5 * MiB, 0],
    ])
    g.release()
    await until(() => g.got.length === 4, 2000, 'what stayed queued')
    expect(g.got).toEqual([1, MiB, MiB, 2 * MiB])
    await rt.shutdown()
  })
})

describe('replies are held to maxPayloadBytes', () => {
  test('a reply over the quota reaches the caller as Err quota-exceeded, and the callee gets a quota warning', async () => {
    const rt = testRuntime({ quotas: { maxPayloadBytes: MiB } })
    const warnings = collect(rt, 'warning')
    const big = await rt.spawn({ name: 'big', fn: { handleCall: (_s, m) => reply(new Uint8Array(Number(utf8(m)))) } })
    const ok = await rt.call(big, String(MiB))
    expect(ok.kind === 'reply' && ok.data.length).toBe(MiB)
    const r = await rt.call(big, String(2 * MiB))
    expect(r.kind).toBe('err')
    expect(r.kind === 'err' && r.error.code).toBe('quota-exceeded')
    expect(r.kind === 'err' && r.error.message).toMatch(/2097152 bytes, over its maxPayloadBytes quota \(1048576\)/)
    expect(warnings.map((w) => [w.code, w.details['op'], w.details['bytes']])).toEqual([['quota', 'reply', 2 * MiB]])
    // An async handler's reply too.
    const slow = await rt.spawn({ name: 'slow', fn: { handleCall: async () => reply(new Uint8Array(3 * MiB)) } })
    const r2 = await rt.call(slow, 'x')
    expect(r2.kind === 'err' && r2.error.code).toBe('quota-exceeded')
    await rt.shutdown()
  })
})

describe('pending delayed casts are bounded in bytes', () => {
  test('a delayed cast that would take the held bytes over maxTimerBytes is dropped with a quota warning', async () => {
    const rt = testRuntime({ quotas: { maxTimerBytes: 4 * MiB } })
    const warnings = collect(rt, 'warning')
    const t = await rt.spawn({
      name: 't',
      fn: {
        handleCast: (_s, _m, ctx) => {
          for (let i = 0; i < 10; i++) ctx.delayedCast(60_000, 'self', new Uint8Array(MiB))
        },
      },
    })
    rt.cast(t, 'go')
    await until(() => warnings.length === 6, 2000, 'six refusals')
    expect(rt.inspect(t)?.timers).toBe(4)
    expect(warnings.every((w) => w.code === 'quota' && w.details['quota'] === 'maxTimerBytes' && w.details['pendingBytes'] === 4 * MiB)).toBe(true)
    await rt.shutdown()
  })
})

describe("a guest's alias is echoed only in part", () => {
  test('an unknown alias of 256 KiB gives a warning of a few hundred characters that says how long it was', async () => {
    const rt = testRuntime()
    const warnings = collect(rt, 'warning')
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller') })
    const alias = 'a'.repeat(256 * 1024)
    await rt.call(caller, `cast:${alias}:x`)
    expect(warnings.map((w) => w.code)).toEqual(['unknown-alias'])
    const w = warnings[0]!
    expect(w.message.length).toBeLessThan(600)
    expect(w.message).toMatch(/\(262144 characters\)/)
    expect(w.details['aliasLength']).toBe(256 * 1024)
    expect((w.details['alias'] as string).length).toBe(64)
    await rt.shutdown()
  })
})

describe('a memory of its own has a cap by default', () => {
  test('a guest growing its memory without end crashes out-of-memory at DEFAULT_MAX_MEMORY_BYTES', async () => {
    const rt = testRuntime({ dense: false })
    const crashes = collect(rt, 'crash')
    const sizes: number[] = []
    const out = await rt.spawn({
      name: 'sink',
      fn: {
        handleCast: (_s, m) => {
          sizes.push(new DataView(m.buffer, m.byteOffset, 4).getUint32(0, true))
        },
      },
    })
    // Its 4,096 growth reports are host calls: the per-invocation time limit is not what this tests.
    const bomb = await rt.spawn({ name: 'bomb', module: wasmPath('runaway'), outputs: { out }, dense: false, maxInvocationMs: Infinity })
    rt.cast(bomb, 'grow')
    await until(() => crashes.length === 1, 20_000, 'the out-of-memory crash')
    expect(DEFAULT_MAX_MEMORY_BYTES).toBe(256 * MiB)
    expect(crashes[0]).toMatchObject({ name: 'bomb', trap: 'out-of-memory' })
    expect(crashes[0]!.error.details).toMatchObject({ maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES })
    await until(() => sizes.length > 0 && Math.max(...sizes) === DEFAULT_MAX_MEMORY_BYTES, 5000, 'the last growth report')
    await rt.shutdown()
  })
})

describe('http-ingress bounds (issue 18, item 7)', () => {
  async function ingress(rt: ReturnType<typeof testRuntime>, handler: EdgeFunction, warnings: string[]) {
    const target = await rt.spawn({ name: 'handler', fn: handler })
    const fn = await httpIngressResource.create({
      name: 'ingress',
      workflowId: 'wf',
      config: { port: '0' },
      warn: (m) => {
        warnings.push(m)
      },
    })
    await rt.spawn({ name: 'ingress', fn, outputs: { new_request: target } })
    return ingressAddress(fn)!.port
  }

  test('sync mode: a body at the documented limit reaches the function whole (its JSON fits the payload quota); one byte more is 413', async () => {
    const rt = testRuntime()
    const warnings: string[] = []
    const port = await ingress(
      rt,
      {
        handleCall: (_s, m) => {
          const req = parseHttpRequest(m)
          const n = req.body?.length ?? -1
          const allFF = req.body?.every((b) => b === 0xff)
          return reply(JSON.stringify({ status: 200, headers: {}, body: [...new TextEncoder().encode(`${n} ${allFF}`)] }))
        },
      },
      warnings,
    )
    // 0xFF everywhere: the longest JSON ("255," per byte).
    const r = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: new Uint8Array(MAX_SYNC_BODY).fill(0xff) })
    expect(r.status).toBe(200)
    expect(await r.text()).toBe(`${MAX_SYNC_BODY} true`)
    const over = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: new Uint8Array(MAX_SYNC_BODY + 1) })
    expect(over.status).toBe(413)
    expect(await over.text()).toMatch(new RegExp(`the limit is ${MAX_SYNC_BODY} bytes in sync mode`))
    await rt.shutdown()
  })

  test(`at most MAX_CONNECTIONS (${MAX_CONNECTIONS}) open connections: the newest are closed at accept, and a warning counts them`, async () => {
    const rt = testRuntime()
    const warnings: string[] = []
    const port = await ingress(rt, { handleCall: () => reply('{"status":200,"headers":{},"body":[]}') }, warnings)
    const sockets: Socket[] = []
    let closedEarly = 0
    for (let i = 0; i < MAX_CONNECTIONS + 40; i++) {
      const s = connect(port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => {
        closedEarly++
      })
      sockets.push(s)
      await new Promise((r) => s.once('connect', r).once('close', r))
    }
    await until(() => closedEarly >= 40 && warnings.length > 0, 5000, 'the refused connections and their warning')
    expect(closedEarly).toBe(40)
    expect(warnings[0]).toMatch(new RegExp(`connection\\(s\\) closed at accept so far: ${MAX_CONNECTIONS} were open already`))
    for (const s of sockets) s.destroy()
    await rt.shutdown()
  })
})

describe('the suspension buffer (issue 18, item 10)', () => {
  test('a stack too big for suspendBufferBytes is the documented guest-fault naming the option and the figure, not "unreachable"', async () => {
    const rt = testRuntime({ suspendBufferBytes: 24 })
    const crashes = collect(rt, 'crash')
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        handleCall: async () => {
          await new Promise((r) => setTimeout(r, 5))
          return reply('ok')
        },
      },
    })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { slow } })
    const r = await rt.call(caller, 'call:slow:x')
    expect(r.kind === 'err' && r.error.code).toBe('callee-crashed')
    expect(crashes.map((c) => c.trap)).toEqual(['guest-fault'])
    expect(crashes[0]!.error.message).toMatch(
      /did not fit the 24-byte suspension buffer while waiting for a call \(it needed at least \d+ bytes\); raise the runtime option suspendBufferBytes/,
    )
    await rt.shutdown()
  })
})
