/**
 * OTP-style supervision: on each crash, what restarts (strategy), when (backoff), and when
 * to give up (restart intensity); and the return of a permanent instance after a normal stop.
 * @packageDocumentation
 */
import type { Actor, ActorSupervisor } from '../actor/actor'
import { statusHas } from '../actor/lifecycle'
import type { Clock } from '../clock'
import { EdgelessError } from '../errors'
import type { CrashRecord, RuntimeEvents } from '../events'
import { checkEnum, type BackoffOptions, type RestartStrategy, type RestartType, type SupervisionOptions } from '../options'

export type { BackoffOptions, RestartStrategy, RestartType, SupervisionOptions }

/** What a supervisor reports to and times backoff with (the runtime's router). @internal */
export interface SupervisorEnv {
  readonly clock: Clock
  emit<K extends keyof RuntimeEvents>(name: K, ev: RuntimeEvents[K][0]): void
}

/** Resolved supervision settings. @internal */
export interface SupervisionPolicy {
  strategy: RestartStrategy
  maxRestarts: number
  periodMs: number
  backoff: Required<BackoffOptions>
  random: () => number
}

/** Check and complete supervision options; throws `invalid-argument` naming the bad field. @internal */
export function resolveSupervision(o: SupervisionOptions = {}, where = 'supervision'): SupervisionPolicy {
  const num = (v: number | undefined, def: number, name: string, min: number): number => {
    const n = v ?? def
    if (typeof n !== 'number' || Number.isNaN(n) || n < min)
      throw new EdgelessError('invalid-argument', `${where}.${name} must be a number >= ${min}, got ${JSON.stringify(v)}.`)
    return n
  }
  const strategy = checkEnum('strategy', o.strategy ?? 'one_for_one', `${where}.strategy`)
  const b = o.backoff ?? {}
  const jitter = num(b.jitter, 0.2, 'backoff.jitter', 0)
  if (jitter > 1) throw new EdgelessError('invalid-argument', `${where}.backoff.jitter must be between 0 and 1, got ${jitter}.`)
  return {
    strategy,
    maxRestarts: num(o.maxRestarts, 3, 'maxRestarts', 0),
    periodMs: num(o.periodMs, 5000, 'periodMs', 0),
    backoff: {
      initialMs: num(b.initialMs, 10, 'backoff.initialMs', 0),
      factor: num(b.factor, 2, 'backoff.factor', 1),
      maxMs: num(b.maxMs, 1000, 'backoff.maxMs', 0),
      jitter,
    },
    random: o.random ?? Math.random,
  }
}

/** Check a restart type; throws `invalid-argument`. @internal */
export function checkRestartType(v: unknown, where: string): RestartType {
  return v === undefined ? 'transient' : checkEnum('restart', v, where)
}

/**
 * An OTP-style supervisor over an ordered group of actors (a workflow's instances, or the
 * runtime's standalone spawns). It decides, on each crash, what restarts and when, and
 * escalates when restarts come too often. The actors do the work of restarting themselves.
 * @internal
 */
export class Supervisor implements ActorSupervisor {
  /** In start order (a Set: a runtime's root supervisor may hold a million lazily spawned children). */
  readonly children = new Set<Actor>()
  /** Restarts within the current period (the crashes that caused them). */
  private recent: CrashRecord[] = []
  /** Every crash this supervisor handled, for escalation reports (bounded). */
  private readonly crashes: CrashRecord[] = []
  private shuttingDown = false

  constructor(
    private readonly sys: SupervisorEnv,
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
      const reason = new EdgelessError(
        'restart-intensity',
        `${this.label} exceeded its restart intensity: ${history.length} restarts within ${this.policy.periodMs} ms (at most ${this.policy.maxRestarts} allowed). Last crash: "${a.name}": ${rec.error.message}. Fix the crash, or raise maxRestarts/periodMs.`,
        { history: history.map((h) => ({ name: h.name, handler: h.handler, at: h.at, error: h.error.message })) },
      )
      this.recent = []
      this.escalate(reason, history, a)
      return
    }
    const group = this.group(a)
    const delay = this.delay()
    this.sys.emit('restart-scheduled', {
      name: a.name,
      instance: a.id,
      restarting: group.map((g) => g.name),
      delayMs: delay,
      restarts: this.recent.length,
      ...(this.name !== undefined ? { workflow: this.name } : {}),
    })
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
    const rec: CrashRecord = {
      name: a.name,
      instance: a.id,
      at: this.sys.clock.now(),
      handler: 'stop',
      error: new EdgelessError('instance-stopped', `"${a.name}" stopped normally and is permanent.`, { name: a.name }),
    }
    if (!this.allowRestart(rec)) {
      this.remove(a)
      const reason = new EdgelessError(
        'restart-intensity',
        `${this.label} exceeded its restart intensity restarting the permanent "${a.name}" after normal stops.`,
        {},
      )
      this.escalate(reason, [...this.recent], a)
      return
    }
    this.sys.clock.setTimeout(() => {
      if (!this.shuttingDown) void respawn()
    }, this.delay())
  }

  private get label(): string {
    return this.name !== undefined ? `The supervisor of workflow "${this.name}"` : "The runtime's supervisor"
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
    const live = all.filter((c) => c === a || statusHas(c.status, 'in-group'))
    switch (this.policy.strategy) {
      case 'one_for_all':
        return live
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
