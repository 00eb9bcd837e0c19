/**
 * The console sink of a runtime's events (`RuntimeOptions.consoleLog`).
 * @packageDocumentation
 */
import type { EventEmitter } from 'eventemitter3'
import type { LogEvent, LogLevelName, RuntimeEvents } from '../events'
import type { InstanceId } from '../ids'

const LEVEL_RANK: Record<LogLevelName, number> = { error: 1, warn: 2, info: 3, debug: 4, trace: 5 }

/**
 * Print a runtime's logs from `level` up, its crashes and lost states (from `error`), and its
 * warnings, call failures and state-write failures (from `warn`), on the console.
 *
 * @example
 * ```ts
 * attachConsole(runtime, 'info')
 * ```
 * @internal
 */
export function attachConsole(events: EventEmitter<RuntimeEvents>, level: LogLevelName): void {
  const rank = LEVEL_RANK[level]
  const short = (id: InstanceId) => id.function.slice(0, 8)
  events.on('log', (e: LogEvent) => {
    if (e.level > rank) return
    const line = `[edgeless] ${e.levelName.toUpperCase()} ${e.name}(${short(e.instance)}) ${e.target}: ${e.text}`
    if (e.level === 1) console.error(line)
    else if (e.level === 2) console.warn(line)
    else console.log(line)
  })
  if (rank >= 1) events.on('state-lost', (e) => console.error(`[edgeless] ERROR ${e.error.message}`))
  if (rank >= 1) events.on('crash', (e) => console.error(`[edgeless] CRASH ${e.name}(${short(e.instance)}) in ${e.handler}: ${e.error.message}`))
  if (rank >= 2) {
    events.on('warning', (e) => console.warn(`[edgeless] WARN ${e.name}(${short(e.instance)}): ${e.message}`))
    events.on('call-timeout', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
    events.on('call-cycle', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
    events.on('state-sync-failed', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
    events.on('state-conflict', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
  }
}
