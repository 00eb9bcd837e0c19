/**
 * The lifecycle of an instance: its statuses, the events between them, and what each
 * status means (tags), as one xstate machine.
 * @packageDocumentation
 */
import { createMachine, initialTransition, transition, type SnapshotFrom } from 'xstate'

/**
 * Where an instance is in its life:
 * - `starting`: built and addressable, `handle_init` not finished (messages queue up);
 * - `running`: processing its mailbox;
 * - `crashed`: a handler trapped; its mailbox is kept while the supervisor decides;
 * - `restarting`: a fresh instance at the same address is initialising with the last state;
 * - `failed`: given up on (temporary, or restart intensity exceeded); refuses messages;
 * - `hibernating` / `hibernated`: passivated (see {@link PassivationOptions}): idle, its
 *   `handle_stop` ran and its wasm instance is released; it stays addressable, and a message
 *   queues up and wakes it;
 * - `activating`: a fresh instance is initialising with the last state, for a message that
 *   arrived while it was hibernated;
 * - `stopping` / `stopped`: shutting down / gone.
 *
 * @example
 * ```ts
 * rt.on('lifecycle', (e) => console.log(`${e.name}: ${e.from} -> ${e.to}`))
 * ```
 */
export type ActorStatus = 'starting' | 'running' | 'crashed' | 'restarting' | 'failed' | 'hibernating' | 'hibernated' | 'activating' | 'stopping' | 'stopped'

/** The events that move an instance through its {@link ActorStatus}es. @internal */
export type LifecycleEvent =
  | { type: 'INIT_OK' }
  | { type: 'CRASH' }
  | { type: 'RESTART' }
  | { type: 'GIVE_UP' }
  | { type: 'HIBERNATE' }
  | { type: 'HIBERNATED' }
  | { type: 'ACTIVATE' }
  | { type: 'STOP' }
  | { type: 'STOPPED' }

/**
 * What a status means, as tags of the machine's states (read with {@link statusHas}):
 * - `accepts`: messages are queued (else refused: dead letters, Err to callers);
 * - `in-group`: restarted with a crashed sibling under `one_for_all` / `rest_for_one`;
 * - `settling`: on its way to `running` or `hibernated` (the test kit waits for it);
 * - `guest-halted`: the guest is not called again, so a stop skips its `handle_stop`.
 */
export type StatusTag = 'accepts' | 'in-group' | 'settling' | 'guest-halted'

/**
 * The lifecycle of every actor, as an xstate machine. It is evaluated with xstate's pure
 * `transition` function (no interpreter per actor: a hundred thousand instances must stay
 * cheap), and consulted only on lifecycle events, never per message.
 * @internal
 */
export const lifecycleMachine = createMachine({
  id: 'edgeless-actor',
  types: {} as { events: LifecycleEvent },
  initial: 'starting',
  states: {
    // HIBERNATED from starting: a lazy spawn, addressable before it was ever instantiated.
    starting: { tags: ['accepts', 'in-group', 'settling'], on: { INIT_OK: 'running', CRASH: 'crashed', STOP: 'stopping', HIBERNATED: 'hibernated' } },
    running: { tags: ['accepts', 'in-group'], on: { CRASH: 'crashed', RESTART: 'restarting', STOP: 'stopping', HIBERNATE: 'hibernating' } },
    crashed: { tags: ['accepts', 'in-group', 'guest-halted'], on: { RESTART: 'restarting', GIVE_UP: 'failed', STOP: 'stopping' } },
    restarting: { tags: ['accepts', 'settling', 'guest-halted'], on: { INIT_OK: 'running', CRASH: 'crashed', STOP: 'stopping' } },
    failed: { tags: ['guest-halted'], on: { STOP: 'stopping' } },
    hibernating: { tags: ['accepts', 'settling', 'guest-halted'], on: { HIBERNATED: 'hibernated', STOP: 'stopping' } },
    hibernated: { tags: ['accepts'], on: { ACTIVATE: 'activating', STOP: 'stopping' } },
    // Activation is a restart without a crash: a crash in its init goes to the supervisor.
    activating: { tags: ['accepts', 'settling'], on: { INIT_OK: 'running', CRASH: 'crashed', STOP: 'stopping' } },
    stopping: { on: { STOPPED: 'stopped' } },
    stopped: { type: 'final' },
  },
})

/** A lifecycle snapshot. @internal */
export type LifecycleSnapshot = SnapshotFrom<typeof lifecycleMachine>

let initial: LifecycleSnapshot | undefined

/** The snapshot every actor starts from (computed once; snapshots are immutable). @internal */
export function initialLifecycle(): LifecycleSnapshot {
  initial ??= initialTransition(lifecycleMachine)[0]
  return initial
}

/**
 * Transitions already computed, by state and event. The machine has no context, so every
 * actor in the same state has an equivalent snapshot: sharing them keeps a million
 * hibernated actors from holding a million snapshot objects, and makes a transition a
 * map lookup instead of ~13 µs of xstate.
 */
const memo = new Map<string, LifecycleSnapshot | null>()

/** The next snapshot, or `undefined` when the machine does not accept the event in this state. @internal */
export function nextLifecycle(s: LifecycleSnapshot, event: LifecycleEvent): LifecycleSnapshot | undefined {
  const key = `${String(s.value)}|${event.type}`
  let next = memo.get(key)
  if (next === undefined) {
    next = s.can(event) ? transition(lifecycleMachine, s, event)[0] : null
    memo.set(key, next)
  }
  return next ?? undefined
}

/** The statuses that carry each tag, read once from the machine's states. */
const TAGGED = new Map<StatusTag, ReadonlySet<ActorStatus>>()
for (const [status, node] of Object.entries(lifecycleMachine.states)) {
  for (const tag of node.tags as StatusTag[]) {
    const set = (TAGGED.get(tag) as Set<ActorStatus> | undefined) ?? new Set<ActorStatus>()
    set.add(status as ActorStatus)
    TAGGED.set(tag, set)
  }
}

/**
 * Does a status carry a tag of the lifecycle machine? (A set lookup: the actor caches the
 * answer it needs per message, `accepts`, in a field at each transition.)
 *
 * @example
 * ```ts
 * statusHas('hibernated', 'accepts') // true: a message wakes it
 * ```
 * @internal
 */
export function statusHas(status: ActorStatus, tag: StatusTag): boolean {
  return TAGGED.get(tag)?.has(status) ?? false
}
