// Ten virtual seconds of upstream's ping-pong workflow, in milliseconds of real time.
// Run with `npm test` (or `npx jest examples/testing`).
import { afterEach, beforeEach, expect, test } from '@jest/globals'
import { Runtime, utf8 } from 'edgeless'
import { createTestKit, type TestKit } from 'edgeless/testing'
import 'edgeless/testing/jest'

let kit: TestKit
beforeEach(() => {
  kit = createTestKit({ Runtime })
})
afterEach(() => kit.shutdown())

test('the pinger pings every virtual second and every ping is answered PONG', async () => {
  const started = Date.now()
  await kit.startWorkflow(new URL('../ping-pong/workflow.json', import.meta.url).pathname)
  await kit.advance(10_000)

  // One ping at start, then one per second: 11 calls in 10 s, each answered PONG.
  const pings = kit.trace.between('pinger', 'ponger')
  expect(pings.map((e) => e.text)).toEqual(Array.from({ length: 11 }, (_, i) => `"PING-${i}"`))
  expect(pings.map((e) => e.time)).toEqual(Array.from({ length: 11 }, (_, i) => i * 1000))
  expect(kit).toHaveSent('pinger', 'ponger', 'PING-10')
  const replies = kit.trace.entries.filter((e) => e.kind === 'reply' && e.to === 'ponger')
  expect(replies.every((r) => r.result?.kind === 'reply' && utf8(r.result.data) === 'PONG')).toBe(true)

  // The application can call in too, as any sender.
  expect(await kit.call('ponger', 'hello', { from: 'pinger' })).toHaveReplied('PONG')
  expect(Date.now() - started).toBeLessThan(5_000) // virtual time: no real second passed per ping
})
