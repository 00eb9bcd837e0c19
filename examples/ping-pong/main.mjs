// The main example: upstream's ping-pong workflow (workflow.json, unchanged upstream format)
// embedded in an application, on defaults: in-memory state, real clock, no services.
// `pinger` wakes itself every second, syncs {"count":N} and calls `ponger`, which answers
// PONG. The application calls `ponger` too, runs a few seconds, then stops gracefully.
import { Runtime, utf8 } from 'edgeless'

const seconds = Number(process.env.SECONDS_TO_RUN ?? 3.5)
const rt = new Runtime()
const wf = await rt.startWorkflow(new URL('./workflow.json', import.meta.url))
console.log(
  `workflow "${wf.name}" started: ${wf
    .instances()
    .map((i) => `${i.name}=${i.status}`)
    .join(', ')}`,
)

// A call from the application itself: the same PONG the pinger gets.
const r = await wf.get('ponger').call('hello from the host')
console.log(`host -> ponger: ${r.kind}${r.kind === 'reply' ? ` ${utf8(r.data)}` : ''}`)

let syncs = 0
rt.on('state-written', (e) => {
  if (e.name === 'pinger') syncs++
})
await new Promise((res) => setTimeout(res, seconds * 1000))
console.log(`pinger synced its state ${syncs} times`)
await wf.stop()
await rt.shutdown()
