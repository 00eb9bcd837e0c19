import type { Actor } from './actor'
import { EdgelessError } from './errors'
import type { CrashRecord } from './events'
import type { System } from './system'

/**
 * When a supervisor restarts an instance, by OTP's names:
 * - `permanent`: always — after a crash, and after a normal stop of that one instance
 *   (`rt.stop(ref)`); only stopping the whole workflow or runtime ends it;
 * - `transient` (the default): after a crash only;
 * - `temporary`: never; a crash leaves it `failed`.
 *
 * OTP's default is `permanent`; ours is `transient` because the only normal exit of an
 * EDGELESS function is a deliberate stop, which should stay a stop.
 *
 * @example
 * ```ts
 * await rt.spawn({ name: 'worker', module, restart: 'permanent' })
 * ```
 */
export type RestartType = 'permanent' | 'transient' | 'temporary'

/**
 * Which instances restart when one crashes (OTP's strategies; order = order in the workflow):
 * `one_for_one` only the crashed one; `one_for_all` every instance of the workflow;
 * `rest_for_one` the crashed one and every instance after it.
 */
export type RestartStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one'

/**
 * Delay before a restart: `initialMs * factor^(n-1)`, capped at `maxMs`, where n counts the
 * restarts within the intensity period; then multiplied by a random factor in
 * `[1 - jitter, 1 + jitter]` so instances that crashed together do not restart in lockstep.
 */
export interface BackoffOptions {
  /** Default 10 ms. 0 restarts at once (as OTP). */
  initialMs?: number
  /** Default 2. */
  factor?: number
  /** Default 1000 ms. */
  maxMs?: number
  /** Default 0.2 (±20%). */
  jitter?: number
}

/**
 * How a supervisor treats crashes: strategy, restart intensity (at most `maxRestarts`
 * restarts within `periodMs`, default 3 in 5000 ms as OTP; one more escalates) and backoff.
 *
 * @example
 * ```ts
 * await rt.startWorkflow('wf.json', { supervision: { strategy: 'rest_for_one', maxRestarts: 10, periodMs: 60_000 } })
 * ```
 */
export interface SupervisionOptions {
  strategy?: RestartStrategy
  maxRestarts?: number
  periodMs?: number
  backoff?: BackoffOptions
  /** Source of jitter (tests pass a seeded one). Default `Math.random`. */
  random?: () => number
}

/** Resolved supervision settings. @internal */
export interface SupervisionPolicy {
  strategy: RestartStrategy
  maxRestarts: number
  periodMs: number
  backoff: Required<BackoffOptions>
  random: () => number
}

const STRATEGIES: readonly RestartStrategy[] = ['one_for_one', 'one_for_all', 'rest_for_one']
const RESTART_TYPES: readonly RestartType[] = ['permanent', 'transient', 'temporary']

/** Check and complete supervision options; throws `invalid-argument` naming the bad field. @internal */
export function resolveSupervision(o: SupervisionOptions = {}, where = 'supervision'): SupervisionPolicy {
  const num = (v: number | undefined, def: number, name: string, min: number): number => {
    const n = v ?? def
    if (typeof n !== 'number' || Number.isNaN(n) || n < min) throw new EdgelessError('invalid-argument', `${where}.${name} must be a number >= ${min}, got ${JSON.stringify(v)}.`)
    return n
  }
  const strategy = o.strategy ?? 'one_for_one'
  if (!STRATEGIES.includes(strategy)) throw new EdgelessError('invalid-argument', `${where}.strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(o.strategy)}.`)
  const b = o.backoff ?? {}
  const jitter = num(b.jitter, 0.2, 'backoff.jitter', 0)
  if (jitter > 1) throw new EdgelessError('invalid-argument', `${where}.backoff.jitter must be between 0 and 1, got ${jitter}.`)
  return {
    strategy,
    maxRestarts: num(o.maxRestarts, 3, 'maxRestarts', 0),
    periodMs: num(o.periodMs, 5000, 'periodMs', 0),
    backoff: { initialMs: num(b.initialMs, 10, 'backoff.initialMs', 0), factor: num(b.factor, 2, 'backoff.factor', 1), maxMs: num(b.maxMs, 1000, 'backoff.maxMs', 0), jitter },
    random: o.random ?? Math.random,
  }
}

/** Check a restart type; throws `invalid-argument`. @internal */
export function checkRestartType(v: unknown, where: string): RestartType {
  if (v === undefined) return 'transient'
  if (!RESTART_TYPES.includes(v as RestartType)) throw new EdgelessError('invalid-argument', `${where} must be one of ${RESTART_TYPES.join(', ')}, got ${JSON.stringify(v)}.`)
  return v as RestartType
}

/**
 * An OTP-style supervisor over an ordered group of actors (a workflow's instances, or the
 * runtime's standalone spawns). It decides, on each crash, what restarts and when, and
 * escalates when restarts come too often. The actors do the work of restarting themselves.
 * @internal
 */
export class Supervisor {
  /** In start order (a Set: a runtime's root supervisor may hold a million lazily spawned children). */
  readonly children = new Set<Actor>()
  /** Restarts within the current period (the crashes that caused them). */
  private recent: CrashRecord[] = []
  /** Every crash this supervisor handled, for escalation reports (bounded). */
  private readonly crashes: CrashRecord[] = []
  private shuttingDown = false

  constructor(
    private readonly sys: System,
    readonly name: string | undefined,
    readonly policy: SupervisionPolicy,
    /** Restart intensity exceeded. The workflow supervisor stops the workflow; the root one gives up on the child. */
    private readonly escalate: (reason: EdgelessError, history: CrashRecord[], child: Actor) => void,
  ) {}

  add(a: Actor): void {
    this.children.add(a)
    a.supervisor = this
  }

  remove(a: Actor): void {
    this.children.delete(a)
  }

  /** Replace `old` by `fresh` at the same position (a permanent child re-spawned after a normal stop; rare, so O(n) is fine). */
  replace(old: Actor, fresh: Actor): void {
    fresh.supervisor = this
    if (!this.children.has(old)) {
      this.children.add(fresh)
      return
    }
    const order = [...this.children]
    this.children.clear()
    for (const c of order) this.children.add(c === old ? fresh : c)
  }

  /** No more restarts: the group is being stopped. */
  shutdown(): void {
    this.shuttingDown = true
  }

  get stopping(): boolean {
    return this.shuttingDown
  }

  /** A child crashed (its status is `crashed`, its mailbox kept). Decide and act. */
  childCrashed(a: Actor, rec: CrashRecord): void {
    this.crashes.push(rec)
    if (this.crashes.length > 100) this.crashes.shift()
    if (this.shuttingDown) return
    if (a.restartType === 'temporary') {
      a.giveUp(new EdgelessError('instance-failed', `"${a.name}" crashed and is temporary, so it is not restarted: ${rec.error.message}`, { name: a.name }))
      return
    }
    if (!this.allowRestart(rec)) {
      const history = [...this.recent]
      const reason = new EdgelessError('restart-intensity', `${this.label} exceeded its restart intensity: ${history.length} restarts within ${this.policy.periodMs} ms (at most ${this.policy.maxRestarts} allowed). Last crash: "${a.name}": ${rec.error.message}. Fix the crash, or raise maxRestarts/periodMs.`, { history: history.map((h) => ({ name: h.name, handler: h.handler, at: h.at, error: h.error.message })) })
      this.recent = []
      this.escalate(reason, history, a)
      return
    }
    const group = this.group(a)
    const delay = this.delay()
    this.sys.emit('restart-scheduled', { name: a.name, instance: a.id, restarting: group.map((g) => g.name), delayMs: delay, restarts: this.recent.length, ...(this.name !== undefined ? { workflow: this.name } : {}) })
    // Siblings are shut down now (stop handler, state flushed, mailbox kept) and restart with it.
    for (const s of group) if (s !== a) void s.haltForRestart()
    this.sys.clock.setTimeout(() => {
      if (this.shuttingDown) return
      void (async () => {
        for (const s of group) {
          if (s.restartType === 'temporary' && s !== a) {
            await s.stop()
            continue
          }
          await s.restart()
        }
      })()
    }, delay)
  }

  /** A child stopped normally (rt.stop on it alone). A permanent child comes back. */
  childStoppedNormally(a: Actor, respawn: () => Promise<void>): void {
    if (this.shuttingDown || a.restartType !== 'permanent') {
      this.remove(a)
      return
    }
    const rec: CrashRecord = { name: a.name, instance: a.id, at: this.sys.clock.now(), handler: 'stop', error: new EdgelessError('instance-stopped', `"${a.name}" stopped normally and is permanent.`, { name: a.name }) }
    if (!this.allowRestart(rec)) {
      this.remove(a)
      const reason = new EdgelessError('restart-intensity', `${this.label} exceeded its restart intensity restarting the permanent "${a.name}" after normal stops.`, {})
      this.escalate(reason, [...this.recent], a)
      return
    }
    this.sys.clock.setTimeout(() => { if (!this.shuttingDown) void respawn() }, this.delay())
  }

  private get label(): string {
    return this.name !== undefined ? `The supervisor of workflow "${this.name}"` : 'The runtime\'s supervisor'
  }

  /** Count a restart against the intensity; false when it exceeds it. */
  private allowRestart(rec: CrashRecord): boolean {
    const now = this.sys.clock.now()
    this.recent = this.recent.filter((r) => now - r.at <= this.policy.periodMs)
    this.recent.push(rec)
    return this.recent.length <= this.policy.maxRestarts
  }

  private group(a: Actor): Actor[] {
    if (this.policy.strategy === 'one_for_one') return [a]
    const all = [...this.children]
    const live = all.filter((c) => c === a || c.status === 'running' || c.status === 'crashed' || c.status === 'starting')
    switch (this.policy.strategy) {
      case 'one_for_all': return live
      case 'rest_for_one': {
        const i = all.indexOf(a)
        return live.filter((c) => all.indexOf(c) >= i)
      }
    }
  }

  private delay(): number {
    const { initialMs, factor, maxMs, jitter } = this.policy.backoff
    if (initialMs === 0) return 0
    const base = Math.min(maxMs, initialMs * factor ** Math.max(0, this.recent.length - 1))
    return Math.max(0, base * (1 + jitter * (2 * this.policy.random() - 1)))
  }
}
