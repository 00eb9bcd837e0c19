// The main example: upstream's ping-pong pair, on embedded defaults (in-memory state,
// real clock, no services). `pinger` wakes itself every second, syncs a counter and calls
// `ponger`, which answers PONG. Runs for a few seconds, then shows what happened.
import { Runtime, utf8 } from 'edgeless'

const seconds = Number(process.env.SECONDS_TO_RUN ?? 3.5)
const rt = new Runtime()
const here = new URL('../fixtures/wasm/', import.meta.url)

const ponger = await rt.spawn({ name: 'ponger', module: new URL('pong.wasm', here) })
const pinger = await rt.spawn({ name: 'pinger', module: new URL('ping.wasm', here), outputs: { ponger } })

// A call from the application itself: the same PONG the pinger gets.
const r = await rt.call(ponger, 'hello from the host')
console.log(`host -> ponger: ${r.kind}${r.kind === 'reply' ? ` ${utf8(r.data)}` : ''}`)

let syncs = 0
rt.on('state-written', (e) => { if (e.name === 'pinger') syncs++ })
await new Promise((res) => setTimeout(res, seconds * 1000))
console.log(`pinger synced its state ${syncs} times; instances: ${rt.instances().map((i) => `${i.name}=${i.status}`).join(', ')}`)
await rt.shutdown()
