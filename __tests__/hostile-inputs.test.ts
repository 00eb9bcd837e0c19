// Hostile workflows (issue 18): a workflow file is input, and whoever wrote it must not get
// to write files anywhere, crash validation, or make the runtime read gigabytes.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals'
import { EdgelessError, type WorkflowProblem } from '../lib/index'
import { testRuntime, wasmPath } from './helpers/fixtures'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeless-hostile-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** Write a workflow file with one file-log resource and one function casting to it. */
function logWorkflow(at: string, filename: string): string {
  mkdirSync(at, { recursive: true })
  const file = join(at, 'workflow.json')
  writeFileSync(
    file,
    JSON.stringify({
      functions: [],
      resources: [{ name: 'log', class_type: 'file-log', output_mapping: {}, configurations: { filename } }],
      annotations: {},
    }),
  )
  return file
}

async function startError(p: Promise<unknown>): Promise<EdgelessError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(EdgelessError)
    return e as EdgelessError
  }
  throw new Error('expected the workflow to be refused')
}

describe('(a) file-log stays inside the workflow folder', () => {
  test('a filename climbing out with ".." is a validation problem naming the field and the fix; nothing is written', async () => {
    const wf = logWorkflow(join(dir, 'a', 'b', 'c'), '../../../escaped/pwned.log')
    const rt = testRuntime()
    const problems = await rt.validateWorkflow(wf)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatchObject({ entity: 'resource', name: 'log', field: 'configurations.filename' })
    expect(problems[0]!.message).toMatch(/climbs out of the workflow's folder.*--log-root/)
    const e = await startError(rt.startWorkflow(wf))
    expect(e.code).toBe('invalid-workflow')
    expect(existsSync(join(dir, 'escaped'))).toBe(false)
    await rt.shutdown()
  })

  test('an absolute filename is refused the same way, even one that exists', async () => {
    const target = join(dir, 'elsewhere.log')
    const wf = logWorkflow(join(dir, 'wf'), target)
    const rt = testRuntime()
    const problems = await rt.validateWorkflow(wf)
    expect(problems.map((p: WorkflowProblem) => p.field)).toEqual(['configurations.filename'])
    expect(problems[0]!.message).toMatch(/is an absolute path/)
    await startError(rt.startWorkflow(wf))
    expect(existsSync(target)).toBe(false)
    await rt.shutdown()
  })

  test('a relative filename inside the folder still works, folders created', async () => {
    const at = join(dir, 'ok')
    const wf = logWorkflow(at, 'logs/./deep/../out.log')
    const rt = testRuntime()
    expect(await rt.validateWorkflow(wf)).toEqual([])
    const h = await rt.startWorkflow(wf)
    await rt.call(h.get('log')!, 'hello')
    await h.stop()
    expect(readFileSync(join(at, 'logs', 'out.log'), 'utf8')).toBe('hello\n')
    await rt.shutdown()
  })

  test('a log root: relative names resolve against it, absolute ones must lie in it', async () => {
    const root = join(dir, 'logroot')
    const rt = testRuntime({ logRoot: root })
    const wf = logWorkflow(join(dir, 'wf'), 'sub/a.log')
    const h = await rt.startWorkflow(wf)
    await rt.call(h.get('log')!, 'in root')
    await h.stop()
    expect(readFileSync(join(root, 'sub', 'a.log'), 'utf8')).toBe('in root\n')
    expect(await rt.validateWorkflow(logWorkflow(join(dir, 'wf2'), join(root, 'b.log')))).toEqual([])
    const outside = await rt.validateWorkflow(logWorkflow(join(dir, 'wf3'), join(dir, 'c.log')))
    expect(outside[0]!.message).toContain(`is outside the log root ${root}`)
    expect((await rt.validateWorkflow(logWorkflow(join(dir, 'wf4'), '../d.log')))[0]!.field).toBe('configurations.filename')
    await rt.shutdown()
  })
})

describe('(d) validation of hostile values never crashes and echoes a bounded amount', () => {
  const fnWith = (annotations: string) =>
    `{"functions":[{"name":"f","class_specification":{"function_type":"RUST_WASM","code":${JSON.stringify(wasmPath('noop'))}},"annotations":${annotations}}],"resources":[]}`

  test('an annotation nested 100,000 arrays deep is one problem naming the field, not a RangeError', async () => {
    const file = join(dir, 'deep.json')
    writeFileSync(file, fnWith(`{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`))
    const rt = testRuntime()
    const problems = await rt.validateWorkflow(file)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatchObject({ entity: 'function', name: 'f', field: 'annotations.x' })
    expect(problems[0]!.message).toMatch(/must be a string .*got an array/)
    expect(problems[0]!.message.length).toBeLessThan(500)
    const e = await startError(rt.startWorkflow(file))
    expect(e.code).toBe('invalid-workflow')
    await rt.shutdown()
  })

  test('a 300,000-element value and a 1 MB string are echoed cut, with their size', async () => {
    const file = join(dir, 'wide.json')
    writeFileSync(file, fnWith(`{"x":[${Array(300_000).fill('1').join(',')}],"restart":${JSON.stringify('p'.repeat(1_000_000))}}`))
    const rt = testRuntime()
    const problems = await rt.validateWorkflow(file)
    expect(problems.map((p) => p.field).sort()).toEqual(['annotations.restart', 'annotations.x'])
    for (const p of problems) expect(p.message.length).toBeLessThan(2100)
    expect(problems.find((p) => p.field === 'annotations.x')!.message).toMatch(/got an array of 300000 items \[1, 1, 1, 1, 1, …\]/)
    // Messages that quote a value whole are cut as a whole, saying by how much.
    expect(problems.find((p) => p.field === 'annotations.restart')!.message).toMatch(
      /^must be permanent, transient or temporary, got "ppp.*… \(10000\d\d characters, cut\)$/,
    )
    const e = await startError(rt.startWorkflow(file))
    expect(e.message.length).toBeLessThan(3000)
    await rt.shutdown()
  })

  test('a workflow given as an object with a deep value: same', async () => {
    let deep: unknown = []
    for (let i = 0; i < 100_000; i++) deep = [deep]
    const rt = testRuntime()
    const problems = await rt.validateWorkflow({
      functions: [],
      resources: [{ name: 'log', class_type: 'file-log', configurations: { filename: 'a.log', deep } as never }],
    })
    expect(problems.map((p) => p.field)).toEqual(['configurations.deep'])
    await rt.shutdown()
  })
})

describe('(e) only regular files of a bounded size are read', () => {
  const wfWithCode = (code: string): string => {
    const file = join(dir, `wf-${Math.random().toString(36).slice(2)}.json`)
    writeFileSync(file, JSON.stringify({ functions: [{ name: 'f', class_specification: { function_type: 'RUST_WASM', code } }], resources: [] }))
    return file
  }
  const fifo = (name: string): string => {
    const p = join(dir, name)
    execFileSync('mkfifo', [p])
    return p
  }
  const sparse = (name: string, bytes: number): string => {
    const p = join(dir, name)
    execFileSync('truncate', ['-s', String(bytes), p])
    return p
  }

  test('code that is /dev/zero or a FIFO is refused at once, naming what it is', async () => {
    const rt = testRuntime()
    const zero = await rt.validateWorkflow(wfWithCode('/dev/zero'))
    expect(zero).toHaveLength(1)
    expect(zero[0]).toMatchObject({ field: 'class_specification.code' })
    expect(zero[0]!.message).toMatch(/\/dev\/zero is not a regular file \(a character device\)/)
    const p = await rt.validateWorkflow(wfWithCode(fifo('code.fifo')))
    expect(p[0]!.message).toMatch(/code\.fifo is not a regular file \(a FIFO\)/)
    await rt.shutdown()
  }, 10_000)

  test('a workflow file that is /dev/zero or a FIFO is a problem on the file, not a hang', async () => {
    const rt = testRuntime()
    const zero = await rt.validateWorkflow('/dev/zero')
    expect(zero).toEqual([expect.objectContaining({ entity: 'workflow', field: '(file)' })])
    expect(zero[0]!.message).toMatch(/is not a regular file \(a character device\)/)
    const f = fifo('wf.fifo')
    expect((await rt.validateWorkflow(f))[0]!.message).toMatch(/is not a regular file \(a FIFO\)/)
    const e = await startError(rt.startWorkflow(f))
    expect(e.code).toBe('invalid-workflow')
    await rt.shutdown()
  }, 10_000)

  test('a (sparse) module over 256 MiB and a workflow file over 16 MiB are refused with the figures, unread', async () => {
    const rt = testRuntime()
    const big = sparse('big.wasm', 300 * 1024 * 1024)
    const p = await rt.validateWorkflow(wfWithCode(big))
    expect(p[0]!.message).toMatch(/big\.wasm is 314572800 bytes, over the limit of 268435456 bytes for a module/)
    const wf = sparse('big.json', 20 * 1024 * 1024)
    expect((await rt.validateWorkflow(wf))[0]!.message).toMatch(/is 20971520 bytes, over the limit of 16777216 bytes for a workflow file; .*maxWorkflowBytes/)
    await rt.shutdown()
  }, 10_000)

  test('the limits are options', async () => {
    const rt = testRuntime({ maxModuleBytes: 100, maxWorkflowBytes: 50 })
    const wf = wfWithCode(wasmPath('noop'))
    expect((await rt.validateWorkflow(wf))[0]!.message).toMatch(/is \d+ bytes, over the limit of 50 bytes for a workflow file/)
    const rt2 = testRuntime({ maxModuleBytes: 100 })
    expect((await rt2.validateWorkflow(wf))[0]!.message).toMatch(/noop\.wasm is \d+ bytes, over the limit of 100 bytes for a module; .*maxModuleBytes/)
    await expect(rt2.spawn({ name: 'n', module: wasmPath('noop') })).rejects.toThrow(/over the limit of 100 bytes/)
    await rt.shutdown()
    await rt2.shutdown()
  })
})

describe('(e) module sources fetched from URLs are bounded too', () => {
  test('a chunked body past the limit, and a declared one, are refused with the figure', async () => {
    const { createServer } = await import('node:http')
    const server = createServer((req, res) => {
      if (req.url === '/declared') res.setHeader('content-length', String(5000))
      res.write(Buffer.alloc(3000))
      res.end(Buffer.alloc(2000))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const port = (server.address() as { port: number }).port
    const rt = testRuntime({ maxModuleBytes: 4000 })
    try {
      await expect(rt.spawn({ name: 'a', module: `http://127.0.0.1:${port}/chunked` })).rejects.toThrow(
        /is more than 4000 bytes \(cut after \d+\), over the limit of 4000 bytes for a module/,
      )
      await expect(rt.spawn({ name: 'b', module: `http://127.0.0.1:${port}/declared` })).rejects.toThrow(
        /is 5000 bytes \(content-length\), over the limit of 4000 bytes/,
      )
      // Under the limit it is read and judged as a module (5000 zero bytes are none).
      const rt2 = testRuntime()
      await expect(rt2.spawn({ name: 'c', module: `http://127.0.0.1:${port}/chunked` })).rejects.toThrow(/not a WebAssembly module \(5000 bytes/)
      await rt2.shutdown()
    } finally {
      await rt.shutdown()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })
})
