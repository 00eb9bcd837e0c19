// The sensor pipeline with its sensor replaced by a stub (the test decides the readings) and
// its file-log resource replaced by a stub that captures what reaches it.
import { afterEach, beforeEach, expect, test } from '@jest/globals'
import { Runtime } from 'edgeless'
import { createTestKit, type TestKit } from 'edgeless/testing'
import 'edgeless/testing/jest'

const workflow = new URL('../sensor-pipeline/workflow.json', import.meta.url).pathname
let kit: TestKit
beforeEach(() => {
  kit = createTestKit({ Runtime })
})
afterEach(() => kit.shutdown())

test('out-of-range readings are filtered and the moving average of the rest is logged', async () => {
  const sensor = kit.stub()
  const log = kit.stub()
  await kit.startWorkflow(workflow, { replace: { sensor: sensor.fn, log: log.fn } })

  // The filter keeps 5..25; the average window is 3.
  for (const reading of ['10.00', '40.00', '20.00', '2.00', '30.00', '15.00']) sensor.cast('output', reading)
  await kit.runUntilIdle()

  expect(log.casts()).toEqual(['10.00', '15.00', '15.00'])
  expect(log).toHaveReceivedCast('15.00')
  expect(log).not.toHaveReceivedCast('40.00')
  expect(kit.sent('filter')).toEqual({ output: ['10.00', '20.00', '15.00'] })
})

test('a reading that is not a number is dropped with a warning, and the pipeline goes on', async () => {
  const sensor = kit.stub()
  const log = kit.stub()
  const warnings: string[] = []
  kit.runtime.on('log', (e) => {
    if (e.level === 2) warnings.push(`${e.name}: ${e.text}`)
  })
  await kit.startWorkflow(workflow, { replace: { sensor: sensor.fn, log: log.fn } })
  sensor.cast('output', 'banana')
  sensor.cast('output', '12.00')
  await kit.runUntilIdle()
  expect(warnings).toEqual([expect.stringMatching(/^filter: .*banana/)])
  expect(log.casts()).toEqual(['12.00'])
})
