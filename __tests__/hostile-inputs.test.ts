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
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'edgeless-hostile-')) })
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** Write a workflow file with one file-log resource and one function casting to it. */
function logWorkflow(at: string, filename: string): string {
  mkdirSync(at, { recursive: true })
  const file = join(at, 'workflow.json')
  writeFileSync(file, JSON.stringify({
    functions: [],
    resources: [{ name: 'log', class_type: 'file-log', output_mapping: {}, configurations: { filename } }],
    annotations: {},
  }))
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
