import { utf8 } from '../lib/index'
import { testRuntime, wasmPath } from './helpers/fixtures'

test('pong answers PONG to a host call', async () => {
  const rt = testRuntime()
  const pong = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
  const r = await rt.call(pong, 'hi')
  expect(r.kind).toBe('reply')
  if (r.kind === 'reply') expect(utf8(r.data)).toBe('PONG')
  await rt.shutdown()
})
