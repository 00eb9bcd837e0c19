/**
 * The contract of a resource class (how a workflow's resources are made), and the problems
 * validation reports.
 * @packageDocumentation
 */
import type { EdgeFunction } from '../js-function'

/**
 * A problem with a workflow, as validation reports it: where (file, function or resource
 * name, field) and what to do about it.
 *
 * @example
 * ```ts
 * { entity: 'resource', name: 'log', field: 'configurations.filename', message: 'is required: set it to the file to append to' }
 * ```
 */
export interface WorkflowProblem {
  /** The workflow file, when the workflow came from one. */
  file?: string
  /** What the problem is about. */
  entity: 'workflow' | 'function' | 'resource'
  /** The function's or resource's name (or its index when it has none). */
  name?: string
  /** The JSON path of the offending field, e.g. `class_specification.code`. */
  field: string
  /** What is wrong and how to fix it. */
  message: string
}

/**
 * What a resource class gets to build one resource instance.
 *
 * @example
 * ```ts
 * create({ config }) { const file = config['filename']; ... }
 * ```
 */
export interface ResourceInit {
  /** The resource's logical name in the workflow. */
  readonly name: string
  /** The running workflow's id (a UUID), e.g. for upstream's `add-workflow-id`. */
  readonly workflowId: string
  /** The resource's `configurations`, over the runtime's defaults for its class. All strings. */
  readonly config: Readonly<Record<string, string>>
  /** The folder of the workflow file, when it came from a file (to resolve relative paths). */
  readonly baseDir?: string
  /** Report a tolerated failure as a `warning` event (code `resource-error`). */
  warn(message: string, details?: Record<string, unknown>): void
}

/**
 * A resource class: what a workflow's `resources[].class_type` names. A resource is an
 * actor like a function — a JS {@link EdgeFunction} built by `create` — so functions cast
 * to and call it through their output mapping. To react to the outside world (an HTTP
 * request, a timer of its own), a resource keeps the `ctx` its `handleInit` receives and
 * casts or calls through it; calls made outside a handler never block the resource's
 * mailbox.
 *
 * @example
 * ```ts
 * const upper: ResourceClass = {
 *   classType: 'upper',
 *   create: () => ({ handleCall: (_src, msg) => reply(utf8(msg).toUpperCase()) }),
 * }
 * rt.registerResource(upper)
 * ```
 */
export interface ResourceClass {
  /** The `class_type` workflows use. */
  readonly classType: string
  /** One line for `edgeless validate` and docs. */
  readonly description?: string
  /** Configuration keys that must be present (validation reports each missing one). */
  readonly required?: readonly string[]
  /** Further checks of the configuration; each returned problem names its key and the fix. */
  validate?(config: Readonly<Record<string, string>>): Array<{ field: string; message: string }>
  /** Build one resource instance. Throw (or reject) to refuse: the workflow does not start. */
  create(init: ResourceInit): EdgeFunction | Promise<EdgeFunction>
}
