/**
 * Upstream's `workflow.json`: its types, and parsing it into functions, resources and
 * annotations with every problem collected.
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import type { WorkflowProblem } from './resource'

/**
 * A workflow as upstream EDGELESS writes it (`workflow.json`). Extra fields are ignored, as
 * upstream's serde does, so files written for an EDGELESS cluster run unchanged.
 *
 * @example
 * ```ts
 * const wf: WorkflowSpec = {
 *   functions: [
 *     { name: 'pinger', class_specification: { id: 'ping', function_type: 'RUST_WASM', version: '0.1', code: 'ping.wasm', outputs: ['ponger'] },
 *       output_mapping: { ponger: 'ponger' }, annotations: {} },
 *     { name: 'ponger', class_specification: { id: 'pong', function_type: 'RUST_WASM', version: '0.1', code: 'pong.wasm', outputs: [] },
 *       output_mapping: {}, annotations: {} },
 *   ],
 *   resources: [],
 *   annotations: {},
 * }
 * ```
 */
export interface WorkflowSpec {
  functions?: WorkflowFunctionSpec[]
  resources?: WorkflowResourceSpec[]
  annotations?: Record<string, string>
}

/** One function of a {@link WorkflowSpec}. */
export interface WorkflowFunctionSpec {
  /** Logical name, unique in the workflow; the target of output mappings. */
  name: string
  class_specification: {
    id?: string
    /** `RUST_WASM` (any EDGELESS wasm module). Upstream's `CONTAINER` does not run here. */
    function_type: string
    version?: string
    /** Path of the `.wasm`, relative to the workflow file (or a URL). */
    code?: string
    /** Inline module bytes: a JSON array of numbers (upstream's serde form) or a base64 string. */
    binary?: number[] | string
    /** The aliases the function uses. */
    outputs?: string[]
  }
  /** Alias -> logical name of a function or resource of this workflow. */
  output_mapping?: Record<string, string>
  /** `init-payload`, `state-id`, and upstream's placement annotations (accepted, ignored). */
  annotations?: Record<string, string>
}

/** One resource of a {@link WorkflowSpec}. */
export interface WorkflowResourceSpec {
  name: string
  /** A registered resource class (`file-log`, `http-ingress`, `http-egress`, `redis`, or your own). */
  class_type: string
  output_mapping?: Record<string, string>
  /** The class's settings; all values are strings. */
  configurations?: Record<string, string>
}

/** Upstream's annotations for placement across a cluster: meaningless on one host, accepted and ignored. */
export const PLACEMENT_ANNOTATIONS: readonly string[] = ['max_instances', 'node_id_match_any', 'label_match_all', 'resource_match_all', 'tee', 'tpm']

/** The annotations this runtime acts on. */
export const KNOWN_ANNOTATIONS: readonly string[] = [
  'init-payload',
  'state-id',
  'restart',
  'mailbox-capacity',
  'mailbox-overflow',
  'fuel',
  'max-memory',
  'max-invocation-ms',
  'state-policy',
  'state-sync',
  'isolation',
  'deadline-ms',
  'passivate',
  'dense',
]

/** Workflow-level annotations this runtime acts on (supervision of the workflow's instances). */
export const WORKFLOW_ANNOTATIONS: readonly string[] = ['restart-strategy', 'max-restarts', 'restart-period-ms']

/** A function of a structurally valid workflow, before its code is loaded. @internal */
export interface ParsedFunction {
  name: string
  index: number
  /** `class_specification.id`. */
  classId: string
  functionType: string
  code?: string
  binary?: Uint8Array
  outputs: string[]
  mapping: Record<string, string>
  annotations: Record<string, string>
}

/** A resource of a structurally valid workflow. @internal */
export interface ParsedResource {
  name: string
  index: number
  classType: string
  mapping: Record<string, string>
  config: Record<string, string>
}

/** The result of the structural pass. @internal */
export interface ParsedWorkflow {
  functions: ParsedFunction[]
  resources: ParsedResource[]
  annotations: Record<string, string>
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The structural pass: shapes, names, duplicates, output mapping targets, function types.
 * Collects every problem instead of stopping at the first. Loading code and checking
 * resource classes is the next pass (it needs the runtime's loader and registry).
 * @internal
 */
export function parseWorkflow(input: unknown, problems: WorkflowProblem[], file?: string): ParsedWorkflow {
  const out: ParsedWorkflow = { functions: [], resources: [], annotations: {} }
  const at = (p: Omit<WorkflowProblem, 'file'>) => problems.push(boundProblem(file === undefined ? p : { file, ...p }))
  if (!isObject(input)) {
    at({
      entity: 'workflow',
      field: '(root)',
      message: `a workflow must be a JSON object with "functions" and "resources" arrays, got ${Array.isArray(input) ? 'an array' : typeof input}`,
    })
    return out
  }
  out.annotations = strings(input['annotations'], (field, message) => at({ entity: 'workflow', field: `annotations${field}`, message }))
  const list = (key: 'functions' | 'resources'): unknown[] => {
    const v = input[key]
    if (v === undefined || v === null) return []
    if (!Array.isArray(v)) {
      at({ entity: 'workflow', field: key, message: `must be an array of ${key === 'functions' ? 'functions' : 'resources'}, got ${typeof v}` })
      return []
    }
    return v
  }
  const seen = new Map<string, string>()
  const nameOf = (entity: 'function' | 'resource', item: Record<string, unknown>, i: number): string | undefined => {
    const n = item['name']
    if (typeof n !== 'string' || n === '') {
      at({ entity, name: `#${i}`, field: 'name', message: `every ${entity} needs a non-empty string "name" (its logical name in the workflow)` })
      return undefined
    }
    const prev = seen.get(n)
    if (prev) {
      at({
        entity,
        name: n,
        field: 'name',
        message: `the name "${n}" is already used by a ${prev}; names must be unique across functions and resources — rename one`,
      })
      return undefined
    }
    seen.set(n, entity)
    return n
  }

  list('functions').forEach((item, i) => {
    if (!isObject(item)) {
      at({ entity: 'function', name: `#${i}`, field: '(item)', message: 'each function must be an object with "name" and "class_specification"' })
      return
    }
    const name = nameOf('function', item, i)
    const label = name ?? (typeof item['name'] === 'string' && item['name'] !== '' ? `${item['name']} (#${i})` : `#${i}`)
    const problem = (field: string, message: string) => at({ entity: 'function', name: label, field, message })
    const cs = item['class_specification']
    if (!isObject(cs)) {
      problem('class_specification', 'is required: an object with "function_type" ("RUST_WASM") and "code" (the .wasm path) or "binary"')
      return
    }
    const ft = cs['function_type']
    if (typeof ft !== 'string') problem('class_specification.function_type', 'is required: set it to "RUST_WASM"')
    else if (ft !== 'RUST_WASM')
      problem(
        'class_specification.function_type',
        `"${ft}" is not supported here: this runtime runs WebAssembly functions only ("RUST_WASM"). Build the function as a .wasm module (function_type "RUST_WASM", "code" its path), or stand a JS function in for it with startWorkflow(file, { replace: { ${JSON.stringify(name ?? label)}: fn } }) (docs/workflows.md, "Container functions")`,
      )
    const code = cs['code']
    const rawBinary = cs['binary']
    let binary: Uint8Array | undefined
    if (rawBinary !== undefined && rawBinary !== null) {
      binary = decodeBinary(rawBinary)
      if (!binary) problem('class_specification.binary', 'must be the module bytes as a JSON array of integers 0..255, or a base64 string')
    }
    if (code !== undefined && code !== null && typeof code !== 'string')
      problem('class_specification.code', 'must be a string: the path of the .wasm file, relative to the workflow file')
    if ((code === undefined || code === null || code === '') && rawBinary === undefined)
      problem('class_specification.code', 'is missing: give the path of the .wasm file (relative to the workflow file) or an inline "binary"')
    const outputsRaw = cs['outputs']
    let outputs: string[] = []
    if (outputsRaw !== undefined && outputsRaw !== null) {
      if (!Array.isArray(outputsRaw) || outputsRaw.some((o) => typeof o !== 'string'))
        problem('class_specification.outputs', 'must be an array of alias names (strings)')
      else outputs = outputsRaw as string[]
    }
    const mapping = strings(item['output_mapping'], (field, message) => problem(`output_mapping${field}`, message))
    const annotations = strings(item['annotations'], (field, message) => problem(`annotations${field}`, message))
    if (name === undefined) return
    out.functions.push({
      name,
      index: i,
      classId: typeof cs['id'] === 'string' ? cs['id'] : '',
      functionType: typeof ft === 'string' ? ft : '',
      ...(typeof code === 'string' && code !== '' ? { code } : {}),
      ...(binary ? { binary } : {}),
      outputs,
      mapping,
      annotations,
    })
  })

  list('resources').forEach((item, i) => {
    if (!isObject(item)) {
      at({ entity: 'resource', name: `#${i}`, field: '(item)', message: 'each resource must be an object with "name" and "class_type"' })
      return
    }
    const name = nameOf('resource', item, i)
    const label = name ?? (typeof item['name'] === 'string' && item['name'] !== '' ? `${item['name']} (#${i})` : `#${i}`)
    const problem = (field: string, message: string) => at({ entity: 'resource', name: label, field, message })
    const ct = item['class_type']
    if (typeof ct !== 'string' || ct === '') problem('class_type', 'is required: the resource class, e.g. "file-log", "http-ingress", "http-egress" or "redis"')
    const mapping = strings(item['output_mapping'], (field, message) => problem(`output_mapping${field}`, message))
    const config = strings(item['configurations'], (field, message) => problem(`configurations${field}`, message))
    if (name === undefined || typeof ct !== 'string' || ct === '') return
    out.resources.push({ name, index: i, classType: ct, mapping, config })
  })

  // Output mappings may only point inside this workflow (that is what isolates workflows).
  for (const [entity, items] of [
    ['function', out.functions],
    ['resource', out.resources],
  ] as const) {
    for (const it of items) {
      for (const [alias, target] of Object.entries(it.mapping)) {
        if (!seen.has(target)) {
          at({
            entity,
            name: it.name,
            field: `output_mapping.${alias}`,
            message: `maps alias "${alias}" to "${target}", which is no function or resource of this workflow (it has: ${[...seen.keys()].join(', ') || 'none'}); fix the name or add it`,
          })
        }
      }
    }
  }
  return out
}

/** Longest problem message kept; a workflow's own values echoed in it are cut well before. */
const MAX_MESSAGE_CHARS = 2000

/**
 * A value from a workflow, shown in a message: type and a short preview, never more than a
 * few hundred characters, and never a throw — a hostile workflow may hold a value nested
 * 100,000 deep (JSON.stringify overflows the stack) or megabytes long.
 * @internal
 */
export function describeValue(v: unknown, depth = 0): string {
  if (typeof v === 'string') return v.length <= 100 ? JSON.stringify(v) : `${JSON.stringify(v.slice(0, 100))}… (${v.length} characters)`
  if (v === null || typeof v !== 'object') return String(v)
  const inner = (x: unknown) =>
    depth >= 2 ? (Array.isArray(x) ? '[…]' : x !== null && typeof x === 'object' ? '{…}' : describeValue(x, depth + 1)) : describeValue(x, depth + 1)
  if (Array.isArray(v)) {
    const head = v.slice(0, 5).map(inner).join(', ')
    const shown = `[${head}${v.length > 5 ? ', …' : ''}]`
    return depth === 0 ? `an array of ${v.length} item${v.length === 1 ? '' : 's'} ${shown}` : shown
  }
  const keys = Object.keys(v)
  const head = keys
    .slice(0, 5)
    .map((k) => `${JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k)}: ${inner((v as Record<string, unknown>)[k])}`)
    .join(', ')
  const shown = `{${head}${keys.length > 5 ? ', …' : ''}}`
  return depth === 0 ? `an object of ${keys.length} key${keys.length === 1 ? '' : 's'} ${shown}` : shown
}

/**
 * A problem whose message (and field) is cut to a readable size, the cut saying how much.
 * @internal
 */
export function boundProblem(p: WorkflowProblem): WorkflowProblem {
  const cut = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters, cut)`)
  if (p.message.length <= MAX_MESSAGE_CHARS && p.field.length <= 200 && (p.name?.length ?? 0) <= 200) return p
  return { ...p, field: cut(p.field, 200), message: cut(p.message, MAX_MESSAGE_CHARS), ...(p.name !== undefined ? { name: cut(p.name, 200) } : {}) }
}

/** An object whose values are all strings (annotations, mappings, configurations); `{}` when absent. */
function strings(v: unknown, problem: (field: string, message: string) => void): Record<string, string> {
  if (v === undefined || v === null) return {}
  if (!isObject(v)) {
    problem('', `must be an object of string values, got ${Array.isArray(v) ? 'an array' : typeof v}`)
    return {}
  }
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string') out[k] = val
    else problem(`.${k}`, `must be a string (upstream's values are all strings), got ${describeValue(val)}; quote it`)
  }
  return out
}

function decodeBinary(v: unknown): Uint8Array | undefined {
  if (Array.isArray(v)) {
    const out = new Uint8Array(v.length)
    for (let i = 0; i < v.length; i++) {
      const b = v[i]
      if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) return undefined
      out[i] = b
    }
    return out
  }
  if (typeof v === 'string' && /^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v)) {
    try {
      const s = atob(v.replace(/\s+/g, ''))
      const out = new Uint8Array(s.length)
      for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
      return out
    } catch {
      return undefined
    }
  }
  return undefined
}

/**
 * One error for a workflow that cannot start, listing every problem (one per line: where,
 * which field, what to do).
 * @internal
 */
export function workflowError(problems: WorkflowProblem[], label: string): EdgelessError {
  const lines = problems.map(formatProblem)
  return new EdgelessError(
    'invalid-workflow',
    `${label} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was started:\n${lines.map((l) => `  - ${l}`).join('\n')}`,
    { problems },
  )
}

/**
 * One problem as one line: `file: function "pinger", output_mapping.ponger: message`.
 *
 * @example
 * ```ts
 * for (const p of err.details.problems) console.error(formatProblem(p))
 * ```
 */
export function formatProblem(problem: WorkflowProblem): string {
  const p = boundProblem(problem)
  const where = p.entity === 'workflow' ? 'workflow' : `${p.entity} "${p.name ?? '?'}"`
  return `${p.file ? `${p.file}: ` : ''}${where}, ${p.field}: ${p.message}`
}
