// The inspector against hostile guests (issue 18): a guest's log lines must not make the
// inspector's state unserialisable (120 lines of 6 MiB made GET /state throw RangeError:
// Invalid string length and kill the CLI), and an instance that crashed or failed must
// show as such on the page.
import { mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from '@jest/globals'
import { noReply, Runtime, type EdgeFunction } from '../lib/node/index'
import { startInspector } from '../lib/node/inspector/index'
import { launchChromium } from './helpers/browser'
import { until, wasmPath } from './helpers/fixtures'

const runtimes: Runtime[] = []
function runtime(options: ConstructorParameters<typeof Runtime>[0] = {}): Runtime {
  const rt = new Runtime({ consoleLog: false, ...options })
  runtimes.push(rt)
  return rt
}
afterAll(async () => {
  await Promise.all(runtimes.map((rt) => rt.shutdown().catch(() => {})))
})

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
      .on('error', reject)
      .end()
  })
}

describe('(f) the inspector under hostile guests', () => {
  test('120 log lines of 6 MiB: /state answers, lines cut showing their size, and the server keeps serving', async () => {
    const rt = runtime({ quotas: { maxLogLinesPerSecond: 1_000_000 } })
    const inspector = await startInspector(rt)
    const big = 'x'.repeat(6 * 1024 * 1024)
    const logger: EdgeFunction = {
      handleCall: (_s, _m, ctx) => {
        for (let i = 0; i < 120; i++) ctx.log('info', big)
        return noReply()
      },
    }
    const ref = await rt.spawn({ name: 'logger', fn: logger })
    await rt.call(ref, 'go')
    await until(() => inspector.state().totals.logs >= 120, 10_000, 'the log lines')
    const r = await get(`${inspector.url}state`)
    expect(r.status).toBe(200)
    expect(r.body.length).toBeLessThan(5 * 1024 * 1024)
    const state = JSON.parse(r.body) as { logs: Array<{ text: string }> }
    expect(state.logs.length).toBeGreaterThan(0)
    expect(state.logs.at(-1)!.text).toMatch(/^x+… \[cut: 6291456 characters\]$/)
    expect((await get(`${inspector.url}state`)).status).toBe(200)
    await inspector.close()
  }, 60_000)

  test('a state that cannot be serialised is a 500 with a clear body, and the next request is served', async () => {
    const rt = runtime()
    const inspector = await startInspector(rt)
    await rt.spawn({ name: 'a', fn: {} })
    // A state that JSON cannot write (what a guest's data could one day make of it).
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    const model = inspector.model as unknown as { state: () => unknown }
    const original = model.state.bind(model)
    model.state = () => cyclic
    const bad = await get(`${inspector.url}state`)
    expect(bad.status).toBe(500)
    expect(bad.body).toMatch(/^The inspector could not serialise its state: .*circular/i)
    model.state = original
    const good = await get(`${inspector.url}state`)
    expect(good.status).toBe(200)
    expect(JSON.parse(good.body).graphs[0].nodes[0].name).toBe('a')
    await inspector.close()
  })

  test('the page marks a failed instance: alert style, status label and its last error on the node', async () => {
    const rt = runtime({ supervision: { maxRestarts: 0, periodMs: 60_000, backoff: { initialMs: 0 } } })
    const inspector = await startInspector(rt)
    const sink = await rt.spawn({ name: 'sink', fn: {} })
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: sink } })
    crashy.cast('panic')
    await until(() => rt.inspect(crashy)?.status === 'failed', 5000, 'the failure')
    const profile = mkdtempSync(join(tmpdir(), 'edgeless-hostile-chromium-'))
    const context = await launchChromium(profile, { width: 1280, height: 900 })
    try {
      const page = context.pages()[0] ?? (await context.newPage())
      await page.goto(inspector.url)
      const node = page.locator('svg.wf g.node[data-name="crashy"]')
      await node.waitFor({ timeout: 10_000 })
      expect(await node.getAttribute('class')).toMatch(/\balert\b/)
      expect(await node.locator('.n-alert').textContent()).toMatch(/^FAILED: crashy crashed in handle_cast/)
      expect(await page.locator('svg.wf g.node[data-name="sink"]').getAttribute('class')).not.toMatch(/\balert\b/)
      expect(await page.locator('#instances tr[data-name="crashy"]').getAttribute('class')).toMatch(/\balert\b/)
      expect(await page.locator('[data-total="failed"] b').textContent()).toBe('1')
    } finally {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
      await inspector.close()
    }
  }, 60_000)
})
