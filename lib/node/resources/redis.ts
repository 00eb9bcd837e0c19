/**
 * The `redis` resource (Node): SET and GET on a Redis server, through `ioredis`.
 *
 * `ioredis` is an optional peer dependency, loaded only when a workflow uses this
 * resource: `npm install ioredis` to use it.
 *
 * Configuration:
 * - `url` (required): the server, e.g. `redis://127.0.0.1:6379` (`rediss://` for TLS,
 *   credentials and database as ioredis accepts them: `redis://:pw@host:6379/2`).
 * - `key` (optional, as upstream): the key a cast SETs. Without it the resource only
 *   GETs: a cast is dropped with a warning that counts the drops (upstream logs a warning
 *   per cast: "Invalid SET operation requested on a redis resource without a 'key'").
 * - `add-workflow-id`: prefixes every key — the SET key and the keys a call GETs — with
 *   the workflow id: `<workflow-id>:<key>`, as upstream's current version does, so
 *   workflows sharing one server keep apart. As upstream (`contains_key`), it is on when
 *   the key is present, whatever its value; a value other than `"true"` is a warning at
 *   creation, since `"false"` turning it on is a surprise. Remove the key to turn it off.
 *
 * Messages:
 * - cast: `SET <key> <payload>`; the payload is stored as bytes, unchanged (binary-safe).
 *   The payload is always the value, never parsed for a key (upstream's redis.rs does
 *   the same).
 * - call: `GET <payload as UTF-8>`; replies the value's bytes. A key that does not exist
 *   answers **NoReply** — distinct from an empty value (an empty reply) and from a
 *   failure (Err). Upstream answers Err for a missing key, conflating it with failures.
 * - a failed command (server gone, timeout, wrong type): a warning, and Err for a call.
 *
 * Connection: made when the instance starts (3 attempts, 3 s connect timeout each); if
 * it fails the workflow does not start (`resource-failed`, naming the url). A connection
 * lost later is retried for about a minute; losing it, failing to get it back and
 * getting it back are each one warning. After a minute, the next command tries once
 * more. The connection is named `edgeless:<resource name>` (`CLIENT LIST`). Commands never wait in an offline queue: while disconnected they fail
 * at once, so a down server cannot stall the functions that use it. SETs from casts are
 * pipelined in order (a GET sent after a SET sees its value); stopping waits for them,
 * then QUITs.
 *
 * @example
 * ```json
 * { "name": "store", "class_type": "redis", "output_mapping": {},
 *   "configurations": { "url": "redis://127.0.0.1:6379", "key": "last-reading", "add-workflow-id": "true" } }
 * ```
 * ```ts
 * ctx.cast('store', '21.5')                  // SET <wf>:last-reading 21.5
 * const r = await ctx.call('store', 'last-reading') // reply '21.5'
 * ```
 * @packageDocumentation
 */
import { closeRedisClient, importIoredis, shownUrl } from '../redis-client'
import { err, noReply, reply } from '../../call-result'
import { EdgelessError } from '../../errors'
import type { EdgeFunction } from '../../js-function'
import { utf8 } from '../../payload'
import type { ResourceClass } from '../../workflow/resource'

const CONNECT_TIMEOUT_MS = 3000
const COMMAND_TIMEOUT_MS = 5000
const INITIAL_ATTEMPTS = 3
/** Reconnection attempts after a connection is lost (backoff 200 ms .. 5 s: about a minute). */
const RECONNECT_ATTEMPTS = 20
/** Casts in flight before a cast waits for the oldest to finish. */
const MAX_IN_FLIGHT = 256

/** The part of an ioredis client this resource uses (kept local: ioredis is optional). */
interface RedisClient {
  readonly status: string
  connect(): Promise<void>
  set(key: string, value: Buffer): Promise<unknown>
  getBuffer(key: string): Promise<Buffer | null>
  quit(): Promise<unknown>
  disconnect(): void
  on(event: string, listener: (...args: never[]) => void): unknown
}
type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClient

function checkConfig(config: Readonly<Record<string, string>>): Array<{ field: string; message: string }> {
  const problems: Array<{ field: string; message: string }> = []
  // A missing `url` is reported by the runner from `required`; only values here. `key` is optional.
  const url = config['url']
  if (url !== undefined) {
    let protocol: string | undefined
    try {
      protocol = new URL(url.trim()).protocol
    } catch {
      protocol = undefined
    }
    if (protocol !== 'redis:' && protocol !== 'rediss:') {
      problems.push({ field: 'url', message: `must be a redis:// or rediss:// URL such as "redis://127.0.0.1:6379", got ${JSON.stringify(url)}` })
    }
  }
  const key = config['key']
  if (key === '') problems.push({ field: 'key', message: 'must name the key a cast SETs, got ""' })
  return problems
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Close a client unless it already ended: ioredis's disconnect() on a closed stream arms a
 * 2 s timer waiting for a 'close' that already happened, which holds the process open.
 */
function disconnect(c: RedisClient): void {
  if (c.status !== 'end') c.disconnect()
}

/**
 * The `redis` resource class. See the module documentation for the message contract.
 *
 * @example
 * ```ts
 * const fn = await redisResource.create({ name: 'store', workflowId, config: { url: 'redis://127.0.0.1:6379', key: 'k' }, warn })
 * const store = await rt.spawn({ name: 'store', fn })
 * ```
 */
export const redisResource: ResourceClass = {
  classType: 'redis',
  description: 'A cast SETs the configured key (if any) to the payload; a call GETs the key named by the payload and replies its value (NoReply if absent).',
  required: ['url'],
  validate: checkConfig,
  async create(init): Promise<EdgeFunction> {
    const who = `redis "${init.name}"`
    const problem =
      init.config['url'] === undefined
        ? { field: 'url', message: 'is required: set it to the Redis server, e.g. "redis://127.0.0.1:6379"' }
        : checkConfig(init.config)[0]
    if (problem)
      throw new EdgelessError('resource-failed', `${who}: configurations.${problem.field} ${problem.message}.`, { name: init.name, field: problem.field })
    const Redis = await importIoredis<RedisConstructor>(
      (e) => new EdgelessError('resource-failed', 'the redis resource needs the ioredis package: npm install ioredis', { package: 'ioredis' }, { cause: e }),
      () =>
        new EdgelessError(
          'resource-failed',
          'the redis resource could not find the Redis class in the installed ioredis package; install ioredis 5: npm install ioredis@5',
          { package: 'ioredis' },
        ),
    )
    const url = init.config['url']!.trim()
    // Upstream: `contains_key("add-workflow-id")`; the value is not read.
    const addWorkflowId = init.config['add-workflow-id']
    if (addWorkflowId !== undefined && addWorkflowId.toLowerCase() !== 'true') {
      init.warn(
        `${who}: configurations.add-workflow-id is ${JSON.stringify(addWorkflowId)}, but as upstream the option is on whenever the key is present; remove the key to turn it off.`,
        { name: init.name, field: 'add-workflow-id' },
      )
    }
    const prefix = addWorkflowId !== undefined ? `${init.workflowId}:` : ''
    const setKey = init.config['key'] === undefined ? undefined : `${prefix}${init.config['key']}`
    /** Casts dropped for want of a `key` (the figure each warning reports). */
    let droppedSets = 0

    let client: RedisClient | undefined
    /** `initial`: connect() attempts are ours, ioredis must not retry; `running`: bounded reconnects; `stopping`: none. */
    let phase: 'initial' | 'running' | 'stopping' = 'initial'
    let lastError: Error | undefined
    let lastWarned: string | undefined
    const inFlight = new Set<Promise<void>>()

    const warnOnce = (message: string) => {
      // ioredis reports every failed reconnection attempt; one warning per distinct problem.
      if (message === lastWarned) return
      lastWarned = message
      init.warn(message, { url: shownUrl(url) })
    }
    const commandFailed = (what: string, e: unknown): string => {
      const message = `${who}: ${what} failed: ${(e as Error)?.message ?? String(e)}`
      init.warn(message, { url: shownUrl(url) })
      return message
    }
    /** After ioredis gave up reconnecting, a command tries once more before failing. */
    const ensureConnected = async (c: RedisClient) => {
      if (c.status === 'end' && phase === 'running') await c.connect()
    }

    return {
      async handleInit() {
        phase = 'initial'
        lastError = undefined
        lastWarned = undefined
        const c = new Redis(url, {
          lazyConnect: true,
          connectTimeout: CONNECT_TIMEOUT_MS,
          commandTimeout: COMMAND_TIMEOUT_MS,
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          retryStrategy: (times: number) => (phase === 'running' && times <= RECONNECT_ATTEMPTS ? Math.min(times * 200, 5000) : null),
          // Shown by CLIENT LIST on the server: which workflow resource a connection is.
          connectionName: `edgeless:${init.name}`.replace(/[^A-Za-z0-9._:-]/g, '_'),
        })
        // Without an 'error' listener ioredis prints "Unhandled error event" to the console.
        c.on('error', (e: Error) => {
          lastError = e
          if (phase === 'running') warnOnce(`${who}: connection to ${shownUrl(url)} failed: ${e.message}; retrying`)
        })
        c.on('close', () => {
          if (phase === 'running') warnOnce(`${who}: connection to ${shownUrl(url)} lost; reconnecting`)
        })
        c.on('ready', () => {
          if (phase === 'running' && lastWarned !== undefined) init.warn(`${who}: reconnected to ${shownUrl(url)}`)
          lastWarned = undefined
        })
        c.on('end', () => {
          if (phase === 'running')
            warnOnce(`${who}: gave up reconnecting to ${shownUrl(url)}; commands fail until the server is back (each command tries to reconnect once)`)
        })
        for (let attempt = 1; ; attempt++) {
          try {
            await c.connect()
            break
          } catch (e) {
            lastError ??= e as Error
            if (attempt >= INITIAL_ATTEMPTS) {
              disconnect(c)
              throw new EdgelessError(
                'resource-failed',
                `${who}: cannot connect to ${shownUrl(url)} (${lastError.message}) after ${INITIAL_ATTEMPTS} attempts; start Redis there, or set configurations.url to a reachable server (redis://host:port).`,
                { name: init.name, url: shownUrl(url) },
                { cause: lastError },
              )
            }
            await sleep(250 * attempt)
          }
        }
        phase = 'running'
        client = c
      },

      async handleCast(_src, msg) {
        const c = client
        if (!c) return
        if (setKey === undefined) {
          droppedSets++
          init.warn(
            `${who}: a cast was dropped: without configurations.key there is no key to SET (${droppedSets} dropped so far); add "key" to the resource's configurations, or only call it (GET).`,
            { name: init.name, dropped: droppedSets },
          )
          return
        }
        // Pipelined: ioredis sends commands in order on one connection, so SETs stay ordered
        // (and a later GET sees them) without waiting for each answer.
        const p: Promise<void> = ensureConnected(c)
          .then(() => c.set(setKey, Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)))
          .then(
            () => undefined,
            (e: unknown) => {
              commandFailed(`SET ${setKey}`, e)
            },
          )
          .finally(() => {
            inFlight.delete(p)
          })
        inFlight.add(p)
        if (inFlight.size > MAX_IN_FLIGHT) await p
      },

      async handleCall(_src, msg) {
        const c = client
        if (!c) return err(`${who} is not connected`)
        const key = `${prefix}${utf8(msg)}`
        try {
          await ensureConnected(c)
          const value = await c.getBuffer(key)
          // A missing key is NoReply: an empty value is an empty reply, a failure is Err.
          return value === null ? noReply() : reply(new Uint8Array(value))
        } catch (e) {
          return err(commandFailed(`GET ${key}`, e))
        }
      },

      async handleStop() {
        const c = client
        client = undefined
        if (!c) return
        await Promise.allSettled([...inFlight])
        phase = 'stopping'
        await closeRedisClient(c)
      },
    }
  },
}
