// The ping-pong workflow (examples/ping-pong/workflow.json, unchanged) running in a page,
// with its state in IndexedDB. serve.mjs bundles this file with esbuild, so the bare
// specifiers below resolve like in any browser bundler: 'edgeless' through the package's
// exports map with the "browser" condition, i.e. the platform-neutral core (dist/index.js),
// and its dependencies (eventemitter3, lru-cache, xstate; binaryen as a lazy chunk) from
// node_modules.
import { Runtime } from 'edgeless'
import { indexedDbStore } from 'edgeless/adapters/indexeddb'

const WORKFLOW = 'ping-pong'
const PINGER_STATE = `${WORKFLOW}/pinger` // <workflow name>/<function name>
const MAX_LINES = 300

const $ = (id) => document.getElementById(id)
const show = { count: $('count'), pongs: $('pongs'), resumed: $('resumed'), status: $('status'), isolation: $('isolation'), log: $('log'), forget: $('forget') }

/** What the page shows, also for tests and the devtools console (globalThis.edgelessExample). */
const state = { status: 'starting', count: null, pongs: 0, resumedFrom: null, lines: 0, errors: [] }

function line(kind, text) {
  const li = document.createElement('li')
  li.className = kind
  li.textContent = `${new Date().toISOString().slice(11, 23)}  ${text}`
  const atBottom = show.log.scrollTop + show.log.clientHeight >= show.log.scrollHeight - 4
  show.log.append(li)
  while (show.log.childElementCount > MAX_LINES) show.log.firstElementChild.remove()
  if (atBottom) show.log.scrollTop = show.log.scrollHeight
  state.lines++
}

function setStatus(s) {
  state.status = s
  show.status.textContent = s
  show.status.dataset.state = s
  document.body.dataset.status = s
}

function fail(text) {
  state.errors.push(text)
  line('error', text)
  setStatus('failed')
}

/** The pinger's stored count, `{"count":N}`, or null when there is none. */
async function storedCount(store) {
  const data = await store.get(PINGER_STATE)
  return data === undefined ? null : JSON.parse(new TextDecoder().decode(data)).count
}

addEventListener('error', (e) => fail(`page error: ${e.message}`))
addEventListener('unhandledrejection', (e) => fail(`unhandled rejection: ${e.reason?.stack ?? e.reason}`))

show.isolation.textContent = globalThis.crossOriginIsolated ? 'cross-origin isolated' : 'not cross-origin isolated'

const store = indexedDbStore({ dbName: 'edgeless-example' })
const rt = new Runtime({ stateStore: store, consoleLog: false })
const example = { rt, store, state, indexedDbStore, wf: undefined }
globalThis.edgelessExample = example

rt.on('log', (e) => {
  line('log', `${e.name}: ${e.text}`)
  if (e.name === 'pinger' && e.text.startsWith('Got Reply: PONG')) show.pongs.textContent = String(++state.pongs)
})
rt.on('state-written', async (e) => {
  if (e.stateId !== PINGER_STATE) return
  try {
    state.count = await storedCount(store)
    show.count.textContent = String(state.count)
  } catch (err) {
    fail(`reading the state back: ${err.message}`)
  }
})
for (const ev of ['crash', 'state-sync-failed', 'state-lost', 'escalation']) {
  rt.on(ev, (e) => fail(`${ev}: ${e.name ?? ''} ${e.error?.message ?? e.reason?.message ?? ''}`))
}

try {
  state.resumedFrom = (await storedCount(store)) ?? 0
  show.resumed.textContent = String(state.resumedFrom)
  line('host', state.resumedFrom ? `IndexedDB holds the pinger's count ${state.resumedFrom}: resuming from it` : 'no stored state: starting from 0')
  const started = performance.now()
  // workflow.json names its code relative to itself (../../fixtures/wasm/ping.wasm): the core
  // resolves that against this URL and fetches it. ping.wasm makes blocking calls, so the core
  // asyncifies it with binaryen first (loaded on demand: the first start takes a moment).
  const wf = await rt.startWorkflow(new URL('../ping-pong/workflow.json', location.href), { name: WORKFLOW })
  line(
    'host',
    `workflow "${wf.name}" started in ${Math.round(performance.now() - started)} ms: ${wf
      .instances()
      .map((i) => `${i.name}=${i.status}`)
      .join(', ')}`,
  )
  example.wf = wf
  setStatus('running')
  show.forget.disabled = false
  show.forget.addEventListener('click', async () => {
    show.forget.disabled = true
    await wf.stop()
    await store.delete(PINGER_STATE)
    location.reload()
  })
} catch (err) {
  fail(`could not start the workflow: ${err.stack ?? err}`)
}
