import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals'
import { memoryStore } from '../adapters/memory'
import { EdgelessError, formatProblem, utf8, type InstanceId, type ResourceClass, type WorkflowProblem, type WorkflowSpec } from '../lib/node/index'
import { collect, testRuntime, until, wasm, wasmPath } from './helpers/fixtures'

/** A resource class that records what it receives, per workflow. */
function collector() {
  const got: Array<{ workflowId: string; name: string; from: InstanceId; text: string; bytes: Uint8Array }> = []
  const cls: ResourceClass = {
    classType: 'collect',
    description: 'records every cast (tests)',
    create: (init) => ({
      handleCast: (from, bytes) => {
        got.push({ workflowId: init.workflowId, name: init.name, from, text: utf8(bytes), bytes })
      },
    }),
  }
  return { cls, got }
}

const fn = (name: string, code: string, mapping: Record<string, string> = {}, annotations: Record<string, string> = {}) => ({
  name,
  class_specification: { id: name, function_type: 'RUST_WASM', version: '0.1', code, outputs: Object.keys(mapping) },
  output_mapping: mapping,
  annotations,
})

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeless-wf-'))
  mkdirSync(join(dir, 'fns'))
  for (const f of ['ping', 'pong', 'echo', 'counter', 'trap']) copyFileSync(wasmPath(f), join(dir, 'fns', `${f}.wasm`))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function writeWorkflow(spec: unknown, name = 'workflow.json', sub = ''): string {
  const folder = join(dir, sub)
  mkdirSync(folder, { recursive: true })
  const file = join(folder, name)
  writeFileSync(file, typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2))
  return file
}

const pingPong: WorkflowSpec = {
  functions: [fn('pinger', 'fns/ping.wasm', { ponger: 'ponger' }), fn('ponger', 'fns/pong.wasm')],
  resources: [],
  annotations: {},
}

describe('validation', () => {
  test('every problem is collected into one invalid-workflow error, naming file, item, field and fix', async () => {
    writeFileSync(join(dir, 'fns', 'garbage.wasm'), 'not wasm at all')
    const file = writeWorkflow({
      functions: [
        fn('a', 'fns/echo.wasm', { out: 'nowhere' }),
        fn('a', 'fns/echo.wasm'),
        { name: 'nocode', class_specification: { id: 'x', function_type: 'RUST_WASM', version: '0.1', outputs: [] } },
        fn('missing', 'fns/does-not-exist.wasm'),
        fn('garbage', 'fns/garbage.wasm'),
        { ...fn('container', 'img:latest'), class_specification: { id: 'c', function_type: 'CONTAINER', version: '1', code: 'img:latest', outputs: [] } },
        fn('badann', 'fns/echo.wasm', {}, { 'init-payload': 42 } as unknown as Record<string, string>),
        { name: 'badbin', class_specification: { id: 'b', function_type: 'RUST_WASM', version: '0.1', binary: [1, 2, 999], outputs: [] } },
      ],
      resources: [
        { name: 'r1', class_type: 'no-such-class', output_mapping: {}, configurations: {} },
        { name: 'log', class_type: 'file-log', output_mapping: {}, configurations: {} },
      ],
      annotations: {},
    })
    const rt = testRuntime()
    const err = await rt.startWorkflow(file).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(EdgelessError)
    const e = err as EdgelessError
    expect(e.code).toBe('invalid-workflow')
    const problems = e.details['problems'] as WorkflowProblem[]
    const find = (name: string, field: string) => problems.find((p) => p.name === name && p.field === field)
    expect(find('a', 'output_mapping.out')?.message).toMatch(/"nowhere".*no function or resource/)
    expect(find('a', 'name')?.message).toMatch(/already used/)
    expect(find('nocode', 'class_specification.code')?.message).toMatch(/missing/)
    expect(find('missing', 'class_specification.code')?.message).toMatch(/cannot read the code/)
    expect(find('garbage', 'class_specification.code')?.message).toMatch(/WebAssembly|wasm/i)
    expect(find('container', 'class_specification.function_type')?.message).toMatch(/CONTAINER.*not supported.*RUST_WASM/)
    expect(find('badann', 'annotations.init-payload')?.message).toMatch(/must be a string/)
    expect(find('badbin', 'class_specification.binary')?.message).toMatch(/0\.\.255/)
    expect(find('r1', 'class_type')?.message).toMatch(/no-such-class.*registerResource/)
    expect(find('log', 'configurations.filename')?.message).toMatch(/required by "file-log"/)
    expect(problems.every((p) => p.file === file)).toBe(true)
    expect(problems.slice(10)).toEqual([])
    // The message lists each problem on its own line, so it reads well in a terminal.
    for (const p of problems) expect(e.message).toContain(formatProblem(p))
    // Nothing was started.
    expect(rt.instances()).toHaveLength(0)
    expect(await rt.validateWorkflow(file)).toEqual(problems)
    await rt.shutdown()
  })

  test('unreadable, non-JSON and non-object workflow files are reported, not thrown raw', async () => {
    const rt = testRuntime()
    const missing = await rt.validateWorkflow(join(dir, 'nope.json'))
    expect(missing[0]?.message).toMatch(/cannot read the workflow file/)
    const bad = await rt.validateWorkflow(writeWorkflow('{ "functions": [ ', 'bad.json'))
    expect(bad[0]?.message).toMatch(/not valid JSON/)
    const arr = await rt.validateWorkflow(writeWorkflow('[]', 'arr.json'))
    expect(arr[0]?.message).toMatch(/must be a JSON object/)
    await expect(rt.startWorkflow(join(dir, 'nope.json'))).rejects.toMatchObject({ code: 'invalid-workflow' })
    await rt.shutdown()
  })

  test('placement annotations and unknown fields are accepted and ignored', async () => {
    const rt = testRuntime()
    const spec = {
      functions: [
        fn(
          'ponger',
          join(dir, 'fns/pong.wasm'),
          {},
          { max_instances: '3', node_id_match_any: 'a,b', label_match_all: 'x', resource_match_all: 'file-log', tee: 'true', tpm: 'true' },
        ),
      ],
      resources: [],
      annotations: { whatever: 'x' },
      extra_field: { ignored: true },
    }
    expect(await rt.validateWorkflow(spec as WorkflowSpec)).toEqual([])
    const wf = await rt.startWorkflow(spec as WorkflowSpec)
    expect(wf.instances().map((i) => i.name)).toEqual(['ponger'])
    await rt.shutdown()
  })
})

describe('running workflows', () => {
  test('ping-pong from a file: code resolves relative to the file, aliases wired, stop runs stop handlers', async () => {
    const file = writeWorkflow(pingPong, 'workflow.json', 'pp')
    // The file lives in pp/, the code in fns/: "fns/ping.wasm" must resolve against pp/.
    const bad = await testRuntime().validateWorkflow(file)
    expect(bad.map((p) => p.field)).toEqual(['class_specification.code', 'class_specification.code'])
    const spec = { ...pingPong, functions: [fn('pinger', '../fns/ping.wasm', { ponger: 'ponger' }), fn('ponger', '../fns/pong.wasm')] }
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const wf = await rt.startWorkflow(writeWorkflow(spec, 'workflow.json', 'pp'))
    expect(wf.name).toBe('pp/workflow')
    expect(wf.instances().map((i) => [i.name, i.kind, i.classType, i.status])).toEqual([
      ['pinger', 'function', 'pinger', 'running'],
      ['ponger', 'function', 'ponger', 'running'],
    ])
    await until(() => logs.some((l) => l.name === 'pinger' && l.text === 'Got Reply: PONG'), 5000, 'a PONG')
    const stops = collect(rt, 'workflow-stop')
    await wf.stop()
    expect(stops).toEqual([{ workflow: 'pp/workflow', workflowId: wf.id }])
    expect(
      logs
        .filter((l) => /'Stop' called/.test(l.text))
        .map((l) => l.name)
        .sort(),
    ).toEqual(['pinger', 'ponger'])
    expect(wf.running).toBe(false)
    expect(wf.instances()).toEqual([])
    expect(rt.instances()).toEqual([])
    await rt.shutdown()
  })

  test('init-payload annotation reaches handle_init; inline binary works as array and base64', async () => {
    const { cls, got } = collector()
    const rt = testRuntime({ resources: [cls] })
    const bytes = wasm('echo')
    const b64 = Buffer.from(bytes).toString('base64')
    const wf = await rt.startWorkflow({
      functions: [
        {
          name: 'e1',
          class_specification: { id: 'echo', function_type: 'RUST_WASM', version: '0.1', binary: [...bytes], outputs: ['out'] },
          output_mapping: { out: 'sink' },
          annotations: { 'init-payload': 'period=5,seed=7' },
        },
        {
          name: 'e2',
          class_specification: { id: 'echo', function_type: 'RUST_WASM', version: '0.1', binary: b64, outputs: ['out'] },
          output_mapping: { out: 'sink' },
          annotations: {},
        },
      ],
      resources: [{ name: 'sink', class_type: 'collect', output_mapping: {}, configurations: {} }],
    })
    await until(() => got.length >= 4, 2000, 'init echoes')
    const e1 = wf.get('e1')!.id.function
    const e2 = wf.get('e2')!.id.function
    expect(got.filter((g) => g.from.function === e1).map((g) => g.text)).toEqual(['init:period=5,seed=7', 'state:-'])
    expect(got.filter((g) => g.from.function === e2).map((g) => g.text)).toEqual(['init:-', 'state:-'])
    expect(got.every((g) => g.workflowId === wf.id && g.name === 'sink')).toBe(true)
    await rt.shutdown()
  })

  test('messages sent during init to an instance started later are queued, not lost', async () => {
    // echo casts "out" from its init; the sink is listed after it, so it is not initialised yet.
    const { cls, got } = collector()
    const rt = testRuntime({ resources: [cls] })
    const warnings = collect(rt, 'warning')
    await rt.startWorkflow({
      functions: [fn('echo', join(dir, 'fns/echo.wasm'), { out: 'sink' }, { 'init-payload': 'x' })],
      resources: [{ name: 'sink', class_type: 'collect' }],
    })
    await until(() => got.length === 2, 2000, 'two init messages')
    expect(got.map((g) => g.text)).toEqual(['init:x', 'state:-'])
    expect(warnings).toEqual([])
    await rt.shutdown()
  })

  test('two workflows with the same logical names are isolated from each other', async () => {
    const { cls, got } = collector()
    const rt = testRuntime({ resources: [cls] })
    const spec: WorkflowSpec = {
      functions: [fn('counter', join(dir, 'fns/counter.wasm'), { output: 'sink' }, { 'init-payload': '100' })],
      resources: [{ name: 'sink', class_type: 'collect', output_mapping: {}, configurations: {} }],
    }
    const a = await rt.startWorkflow(spec, { name: 'A' })
    const b = await rt.startWorkflow(
      { ...spec, functions: [fn('counter', join(dir, 'fns/counter.wasm'), { output: 'sink' }, { 'init-payload': '500' })] },
      { name: 'B' },
    )
    await until(() => got.length >= 2, 3000, 'both counters')
    const fromA = got.filter((g) => g.workflowId === a.id)
    const fromB = got.filter((g) => g.workflowId === b.id)
    expect(fromA.map((g) => g.text)).toEqual(['101'])
    expect(fromB.map((g) => g.text)).toEqual(['501'])
    expect(fromA[0]!.from).toEqual(a.get('counter')!.id)
    expect(fromB[0]!.from).toEqual(b.get('counter')!.id)
    expect(a.get('sink')!.id).not.toEqual(b.get('sink')!.id)
    // The same workflow name cannot run twice (its state ids would collide).
    await expect(rt.startWorkflow(spec, { name: 'A' })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/already runs.*different \{ name \}/),
    })
    expect(
      rt
        .runningWorkflows()
        .map((w) => w.name)
        .sort(),
    ).toEqual(['A', 'B'])
    await a.stop()
    expect(rt.runningWorkflows().map((w) => w.name)).toEqual(['B'])
    await rt.shutdown()
  })

  test('patch rewires an output mapping live, and rejects unknown names without changing anything', async () => {
    const { cls, got } = collector()
    const rt = testRuntime({ resources: [cls] })
    const wf = await rt.startWorkflow({
      functions: [fn('echo', join(dir, 'fns/echo.wasm'), { out: 'left' })],
      resources: [
        { name: 'left', class_type: 'collect' },
        { name: 'right', class_type: 'collect' },
      ],
    })
    await until(() => got.length === 2, 2000, 'init messages')
    const echo = wf.get('echo')!
    echo.cast('one')
    await until(() => got.length === 3, 2000, 'one')
    wf.patch('echo', { out: 'right' })
    echo.cast('two')
    await until(() => got.length === 4, 2000, 'two')
    expect(got.slice(2).map((g) => [g.name, utf8(g.bytes.subarray(32))])).toEqual([
      ['left', 'one'],
      ['right', 'two'],
    ])
    expect(() => wf.patch('echo', { out: 'nowhere' })).toThrow(
      expect.objectContaining({ code: 'invalid-workflow', message: expect.stringMatching(/"nowhere" is no function or resource/) }),
    )
    expect(() => wf.patch('ghost', {})).toThrow(expect.objectContaining({ code: 'invalid-workflow' }))
    expect(rt.inspect(echo)!.outputs).toEqual({ out: wf.get('right')!.id })
    // Patching to an empty mapping removes the alias: the next cast is an unknown alias.
    const warnings = collect(rt, 'warning')
    wf.patch('echo', {})
    echo.cast('three')
    await until(() => warnings.length === 1, 2000, 'unknown alias warning')
    expect(warnings[0]!.code).toBe('unknown-alias')
    await rt.shutdown()
  })

  test('state ids are <workflow>/<function>: stop and start again with the same store and the counter resumes', async () => {
    const store = memoryStore()
    const file = writeWorkflow(
      { ...pingPong, functions: [fn('pinger', '../fns/ping.wasm', { ponger: 'ponger' }), fn('ponger', '../fns/pong.wasm')] },
      'workflow.json',
      'pp',
    )
    const counts = async () => JSON.parse(utf8((await store.get('pp/workflow/pinger'))!)).count as number
    const rt1 = testRuntime({ stateStore: store })
    const logs1 = collect(rt1, 'log')
    const wf1 = await rt1.startWorkflow(file)
    await until(() => logs1.some((l) => l.text === 'Got Reply: PONG'), 3000, 'first ping')
    await wf1.stop()
    const after1 = await counts()
    expect(after1).toBeGreaterThanOrEqual(1)
    await rt1.shutdown()

    // A new runtime (a new process, as far as the workflow knows) with the same store.
    const rt2 = testRuntime({ stateStore: store })
    const logs2 = collect(rt2, 'log')
    const wf2 = await rt2.startWorkflow(file)
    await until(() => logs2.some((l) => l.text.startsWith("Pinger: 'Cast'")), 3000, 'second run')
    await wf2.stop()
    expect(await counts()).toBe(after1 + 1)
    const pongCalls = logs2.filter((l) => l.name === 'ponger' && /'Call' called/.test(l.text))
    // PING-<after1> is the first ping of the second run: [80, 73, 78, 71, 45, ...] = "PING-"
    expect(pongCalls[0]!.text).toContain(JSON.stringify([...Buffer.from(`PING-${after1}`)]).replace(/,/g, ', '))
    await rt2.shutdown()
  })

  test('an explicit state-id annotation keys the state', async () => {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const wf = await rt.startWorkflow({ functions: [fn('echo', join(dir, 'fns/echo.wasm'), {}, { 'state-id': 'my-echo-state' })] })
    wf.get('echo')!.cast('sync:hello')
    await wf.get('echo')!.call('after the sync') // answered after the cast: the sync has happened
    await wf.stop()
    expect(utf8((await store.get('my-echo-state'))!)).toBe('hello')
    await rt.shutdown()
  })

  test('an init crash stops what already started and starts nothing else', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const err = await rt
      .startWorkflow(
        {
          functions: [
            fn('ponger', join(dir, 'fns/pong.wasm')),
            fn('bad', join(dir, 'fns/trap.wasm'), {}, { 'init-payload': 'panic' }),
            fn('never', join(dir, 'fns/pong.wasm')),
          ],
        },
        { name: 'crashy' },
      )
      .then(
        () => null,
        (e: unknown) => e as EdgelessError,
      )
    expect(err).toMatchObject({ code: 'trap', message: expect.stringMatching(/Starting workflow "crashy" failed at "bad"/) })
    expect(rt.instances()).toEqual([])
    expect(rt.runningWorkflows()).toEqual([])
    // The ponger that had started was stopped properly; "never" never ran its init.
    expect(logs.filter((l) => l.name === 'ponger').map((l) => l.text)).toEqual(["Ponger: 'Init' called", "Ponger: 'Stop' called"])
    expect(logs.some((l) => l.name === 'never')).toBe(false)
    // The name is free again.
    const wf = await rt.startWorkflow({ functions: [fn('ponger', join(dir, 'fns/pong.wasm'))] }, { name: 'crashy' })
    await wf.stop()
    await rt.shutdown()
  })

  test('a resource class that fails to create fails the start with resource-failed; shutdown stops workflows', async () => {
    const rt = testRuntime({
      resources: [
        {
          classType: 'broken',
          create: () => {
            throw new Error('no backend')
          },
        },
      ],
    })
    await expect(rt.startWorkflow({ resources: [{ name: 'b', class_type: 'broken' }] })).rejects.toMatchObject({
      code: 'resource-failed',
      message: expect.stringMatching(/"b".*no backend/),
    })
    const wf = await rt.startWorkflow({ functions: [fn('ponger', join(dir, 'fns/pong.wasm'))] })
    await rt.shutdown()
    expect(wf.running).toBe(false)
    await expect(rt.startWorkflow({ functions: [] })).rejects.toMatchObject({ code: 'runtime-shutdown' })
  })

  test('registerResource validates its argument and custom classes validate their configuration', async () => {
    const rt = testRuntime()
    expect(() => rt.registerResource({} as ResourceClass)).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
    rt.registerResource({
      classType: 'needs-mode',
      required: ['mode'],
      validate: (c) => (c['mode'] && !['a', 'b'].includes(c['mode']) ? [{ field: 'configurations.mode', message: 'must be "a" or "b"' }] : []),
      create: () => ({}),
    })
    expect(rt.resourceClasses()).toEqual(expect.arrayContaining(['needs-mode', 'http-egress', 'file-log', 'http-ingress', 'redis']))
    const p1 = await rt.validateWorkflow({ resources: [{ name: 'r', class_type: 'needs-mode', configurations: {} }] })
    expect(p1).toEqual([{ entity: 'resource', name: 'r', field: 'configurations.mode', message: expect.stringMatching(/required/) }])
    const p2 = await rt.validateWorkflow({ resources: [{ name: 'r', class_type: 'needs-mode', configurations: { mode: 'z' } }] })
    expect(p2).toEqual([{ entity: 'resource', name: 'r', field: 'configurations.mode', message: 'must be "a" or "b"' }])
    // Runtime-wide defaults fill configuration gaps.
    const rt2 = testRuntime({ resourceConfig: { 'needs-mode': { mode: 'a' } } })
    rt2.registerResource({ classType: 'needs-mode', required: ['mode'], create: () => ({}) })
    expect(await rt2.validateWorkflow({ resources: [{ name: 'r', class_type: 'needs-mode' }] })).toEqual([])
    await rt.shutdown()
    await rt2.shutdown()
  })
})
