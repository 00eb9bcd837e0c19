/**
 * Reading a workflow: a file path or URL through the runtime's loader, as UTF-8 JSON, and
 * resolving the `code` paths in it against its location.
 * @packageDocumentation
 */
import { utf8Strict } from '../payload'
import type { SourceLoader } from '../wasm/loader'
import type { WorkflowProblem } from './resource'
import type { WorkflowSpec } from './spec'

/** A workflow as read: the parsed JSON (not yet validated), where it came from, and what went wrong reading it. @internal */
export interface ReadWorkflow {
  spec: unknown
  file?: string
  base?: string
  problems: WorkflowProblem[]
}

/**
 * Read a workflow given as an object (taken as it is), a path or a URL (read with `loader`
 * and parsed as JSON). Unreadable, non-UTF-8 and invalid JSON files are problems, not throws.
 *
 * @example
 * ```ts
 * const { spec, problems } = await readWorkflow('workflow.json', fileLoader)
 * ```
 * @internal
 */
export async function readWorkflow(workflow: WorkflowSpec | string | URL, loader: SourceLoader): Promise<ReadWorkflow> {
  if (typeof workflow !== 'string' && !(workflow instanceof URL)) return { spec: workflow, problems: [] }
  const file = typeof workflow === 'string' ? workflow : workflow.href
  const problem = (message: string): WorkflowProblem[] => [{ file, entity: 'workflow', field: '(file)', message }]
  let bytes: Uint8Array
  try {
    bytes = await loader(workflow)
  } catch (e) {
    return { spec: undefined, file, base: file, problems: problem(`cannot read the workflow file: ${(e as Error).message}; check the path`) }
  }
  const text = utf8Strict(bytes)
  if (text === undefined) return { spec: undefined, file, base: file, problems: problem('is not UTF-8 text; a workflow is a JSON file') }
  try {
    return { spec: JSON.parse(text), file, base: file, problems: [] }
  } catch (e) {
    return { spec: undefined, file, base: file, problems: problem(`is not valid JSON (${(e as Error).message}); fix the syntax`) }
  }
}

/**
 * Resolve a workflow's `code` against the workflow's location: URLs (`https:`, `file:`)
 * with URL rules, otherwise as POSIX paths relative to the workflow file's folder. (The
 * Node entry resolves with `node:path` instead.)
 *
 * @example
 * ```ts
 * resolveRef('pong.wasm', '/wf/workflow.json') // '/wf/pong.wasm'
 * ```
 * @internal
 */
export function resolveRef(code: string, base: string | undefined): string {
  if (/^[a-z][a-z0-9+.-]+:/i.test(code) || base === undefined) return code
  if (/^[a-z][a-z0-9+.-]+:/i.test(base)) return new URL(code, base).href
  if (code.startsWith('/')) return code
  const slash = base.lastIndexOf('/')
  return slash < 0 ? code : `${base.slice(0, slash + 1)}${code}`
}
