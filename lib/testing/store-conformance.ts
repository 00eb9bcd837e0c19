/**
 * The `StateStore` conformance suite: the behaviour every adapter must have, as jest tests.
 * The adapters shipped with edgeless run it (`__tests__/stores.test.ts`); authors of other
 * adapters can run it too. It uses the test runner's globals (`describe`, `test`, `expect`, ...),
 * so it runs under jest (and runners with jest-compatible globals) without importing jest itself:
 * importing `edgeless/testing` outside a test runner stays harmless.
 *
 * @example
 * ```ts
 * // my-store.test.ts
 * import { testStateStore } from 'edgeless/testing'
 * import { myStore } from '../src/my-store'
 * testStateStore('myStore', () => myStore({ namespace: `test-${Math.random()}` }), {
 *   cleanup: (store) => dropNamespace(store.namespace),
 * })
 * ```
 * @packageDocumentation
 */
import type {
  afterAll as AfterAll,
  afterEach as AfterEach,
  beforeEach as BeforeEach,
  describe as Describe,
  expect as Expect,
  test as Test,
} from '@jest/globals'
import type { StateStore } from '../state/store'

/**
 * Options of {@link testStateStore}.
 *
 * `list`, `versions` and `dispose` say which optional methods the store has; the tests for
 * a method it lacks are not registered (they neither pass nor show as skipped). Left out,
 * each is found out from one store `make()` returns while the tests are registered — which
 * needs `make()` to return the store itself, not a promise: with an async factory, pass all
 * three. That probe store is disposed, and cleaned up, after the suite.
 *
 * @example
 * ```ts
 * const options: StateStoreSuiteOptions<MyStore> = {
 *   cleanup: (s) => s.dropAll(),
 *   bigValues: false, // the backend caps values at 1 MiB
 *   list: true, versions: false, dispose: true, // make() is async
 * }
 * testStateStore('myStore', async () => await connect(), options)
 * ```
 */
export interface StateStoreSuiteOptions<S extends StateStore = StateStore> {
  /**
   * Runs after each test, once the store is disposed: remove what the test left in the
   * backend (a folder, keys under a prefix). It must not need the store: it is disposed.
   */
  cleanup?: (store: S) => Promise<void> | void
  /** Run the 16 MiB round trip (default `true`). */
  bigValues?: boolean
  /** The store has `list()`. */
  list?: boolean
  /** The store has `setIfVersion` and `getVersioned`. */
  versions?: boolean
  /** The store has `dispose()`. */
  dispose?: boolean
  /** Time limit of each test, in ms (default 30000; the 16 MiB test gets four times as much). */
  timeoutMs?: number
}

/** Which optional methods a store has, and the store made to find out (to dispose after the suite). */
interface Features<S> {
  list: boolean
  versions: boolean
  dispose: boolean
  halfVersions: boolean
  probe?: S
}

/**
 * Register a jest `describe(name)` block checking that the stores `make()` returns behave as
 * the `StateStore` contract says. Each test gets a fresh store from `make()` (which should
 * give it its own namespace), disposes it after, then calls `options.cleanup`. Tests only
 * read and write ids starting with a random per-test prefix, and only look at those in
 * `list()`, so a backend may hold other data.
 *
 * Checked: a missing id reads as `undefined`; values round-trip byte for byte (all 256 byte
 * values, the empty value, 16 MiB); stored values are not aliased to the caller's buffers;
 * Unicode ids, ids with `/`, `:` and spaces, and 300-character ids round-trip and list back
 * exactly; 500 writes to one id issued without waiting land in call order; overwrite;
 * delete (a missing id too); `dispose()` resolves, twice. With versions: the first write is
 * version 1 and each write adds one; `setIfVersion` with the current version writes, with
 * another one it reports `{ conflict: current }` and writes nothing; of concurrent
 * `setIfVersion` calls with the same version exactly one wins; a deleted id is absent again
 * (version 0, next write version 1).
 *
 * @example
 * ```ts
 * import { memoryStore } from 'edgeless/adapters/memory'
 * import { redisStore } from 'edgeless/adapters/redis'
 * import { testStateStore } from 'edgeless/testing'
 * testStateStore('memoryStore', () => memoryStore())
 * // A fresh key prefix per store; cleanup deletes its keys (with a client of its own: the store is disposed by then).
 * testStateStore('redisStore', () => redisStore({ prefix: `test:${Math.random()}:` }), {
 *   cleanup: (store) => deleteKeysUnder(store.prefix),
 * })
 * ```
 */
export function testStateStore<S extends StateStore>(name: string, make: () => Promise<S> | S, options: StateStoreSuiteOptions<S> = {}): void {
  const { afterAll, afterEach, beforeEach, describe, expect, test } = runnerGlobals()
  const timeout = options.timeoutMs ?? 30_000
  const bigValues = options.bigValues ?? true

  // Before describe(): an async factory without the feature options throws from this call.
  const has = features(name, make, options)

  describe(name, () => {
    if (has.probe) {
      const probe = has.probe
      afterAll(async () => {
        await probe.dispose?.()
        await options.cleanup?.(probe)
      })
    }

    let store: S
    /** This test's id prefix: random, so tests never meet each other's ids (or anyone else's). */
    let p: string
    beforeEach(async () => {
      store = await make()
      p = `conformance-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}/`
    })
    afterEach(async () => {
      await store.dispose?.()
      await options.cleanup?.(store)
    })

    test(
      'a missing id reads as undefined',
      async () => {
        expect(await store.get(`${p}missing`)).toBeUndefined()
      },
      timeout,
    )

    test(
      'values round-trip byte for byte: all 256 byte values, the empty value',
      async () => {
        const all = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256)
        await store.set(`${p}all`, all)
        await store.set(`${p}empty`, new Uint8Array(0))
        await store.set(`${p}one`, Uint8Array.of(0))
        // A view into a bigger buffer: only its own bytes are the value.
        const backing = Uint8Array.from({ length: 64 }, (_, i) => i)
        await store.set(`${p}view`, backing.subarray(10, 20))
        const got = await store.get(`${p}all`)
        expect(got).toBeInstanceOf(Uint8Array)
        expect(plain(got)).toEqual(all)
        expect(plain(await store.get(`${p}empty`))).toEqual(new Uint8Array(0))
        expect(plain(await store.get(`${p}one`))).toEqual(Uint8Array.of(0))
        expect(plain(await store.get(`${p}view`))).toEqual(Uint8Array.from({ length: 10 }, (_, i) => i + 10))
      },
      timeout,
    )

    test(
      "stored values are not aliased to the caller's buffers, either way",
      async () => {
        const input = Uint8Array.of(1, 2, 3, 4)
        await store.set(`${p}k`, input)
        input[0] = 99 // the caller reuses its buffer after the write
        const out = await store.get(`${p}k`)
        expect(plain(out)).toEqual(Uint8Array.of(1, 2, 3, 4))
        out![1] = 77 // and scribbles on what it read
        expect(plain(await store.get(`${p}k`))).toEqual(Uint8Array.of(1, 2, 3, 4))
      },
      timeout,
    )

    // With bigValues: false the case is not registered at all (like a method the store lacks),
    // rather than reported as skipped.
    ;(bigValues ? test : ((() => {}) as unknown as typeof test))(
      'a 16 MiB value round-trips byte for byte',
      async () => {
        const big = noise(16 * 1024 * 1024, 0x9e3779b9)
        await store.set(`${p}big`, big)
        const got = await store.get(`${p}big`)
        expect(got?.length).toBe(big.length)
        expect(firstDifference(got!, big)).toBe(-1)
        // And replaced by a small one, nothing of the big one left.
        await store.set(`${p}big`, Uint8Array.of(5))
        expect(plain(await store.get(`${p}big`))).toEqual(Uint8Array.of(5))
      },
      timeout * 4,
    )

    test(
      'ids with Unicode, "/", ":", spaces, and 300 characters round-trip',
      async () => {
        const ids = idsFor(p)
        for (const [i, id] of ids.entries()) await store.set(id, text(`value ${i}`))
        for (const [i, id] of ids.entries()) expect(str(await store.get(id))).toBe(`value ${i}`)
      },
      timeout,
    )

    if (has.list) {
      test(
        'list() returns exactly the ids written, deleted ones gone',
        async () => {
          const ids = idsFor(p)
          for (const [i, id] of ids.entries()) await store.set(id, text(`value ${i}`))
          const mine = async () => (await store.list!()).filter((id) => id.startsWith(p)).sort()
          expect(await mine()).toEqual([...ids].sort())
          await store.delete(ids[0]!)
          expect(await mine()).toEqual(ids.slice(1).sort())
        },
        timeout,
      )
    }

    test(
      '500 writes to one id issued without waiting land in call order',
      async () => {
        const value = (i: number) => text(`v${i}:` + 'x'.repeat((i * 37) % 1000))
        const writes: Promise<void>[] = []
        for (let i = 0; i < 500; i++) writes.push(Promise.resolve(store.set(`${p}hot`, value(i))))
        await Promise.all(writes)
        expect(str(await store.get(`${p}hot`))).toBe(str(value(499)))
      },
      timeout,
    )

    test(
      'a write replaces the value',
      async () => {
        await store.set(`${p}k`, text('a much longer first value'))
        await store.set(`${p}k`, text('short'))
        expect(str(await store.get(`${p}k`))).toBe('short')
        await store.set(`${p}other`, text('untouched'))
        await store.set(`${p}k`, text('third'))
        expect(str(await store.get(`${p}k`))).toBe('third')
        expect(str(await store.get(`${p}other`))).toBe('untouched')
      },
      timeout,
    )

    test(
      'delete removes the value; deleting a missing id is not an error',
      async () => {
        await store.set(`${p}k`, text('v'))
        await store.set(`${p}keep`, text('w'))
        await store.delete(`${p}k`)
        expect(await store.get(`${p}k`)).toBeUndefined()
        expect(str(await store.get(`${p}keep`))).toBe('w')
        await store.delete(`${p}k`)
        await store.delete(`${p}never-written`)
        await store.set(`${p}k`, text('again'))
        expect(str(await store.get(`${p}k`))).toBe('again')
      },
      timeout,
    )

    if (has.dispose) {
      test(
        'dispose() resolves, and calling it twice is fine',
        async () => {
          await store.set(`${p}k`, text('v'))
          await store.dispose!()
          await store.dispose!()
        },
        timeout,
      )
    }

    if (has.halfVersions) {
      test('setIfVersion and getVersioned come together', () => {
        expect({ setIfVersion: typeof store.setIfVersion, getVersioned: typeof store.getVersioned }).toEqual({
          setIfVersion: 'function',
          getVersioned: 'function',
        })
      })
    }

    if (has.versions) {
      describe('versions', () => {
        const setIf = (id: string, data: Uint8Array, expected: number) => Promise.resolve(store.setIfVersion!(id, data, expected))
        const versioned = (id: string) => Promise.resolve(store.getVersioned!(id))

        test(
          'a missing id has no version; the first write is version 1 and each write adds one',
          async () => {
            expect(await versioned(`${p}k`)).toBeUndefined()
            await store.set(`${p}k`, text('a'))
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'a', version: 1 })
            await store.set(`${p}k`, text('b'))
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'b', version: 2 })
            expect(await setIf(`${p}k`, text('c'), 2)).toBe(3)
            await store.set(`${p}k`, text('d'))
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'd', version: 4 })
            // Per id: another id starts at 1.
            expect(await setIf(`${p}other`, text('x'), 0)).toBe(1)
          },
          timeout,
        )

        test(
          'versioned values round-trip byte for byte',
          async () => {
            const all = Uint8Array.from({ length: 256 }, (_, i) => i)
            expect(await setIf(`${p}all`, all, 0)).toBe(1)
            const got = await versioned(`${p}all`)
            expect(got?.data).toBeInstanceOf(Uint8Array)
            expect(plain(got?.data)).toEqual(all)
            expect(await setIf(`${p}all`, new Uint8Array(0), 1)).toBe(2)
            expect(plain((await versioned(`${p}all`))?.data)).toEqual(new Uint8Array(0))
          },
          timeout,
        )

        test(
          'setIfVersion with the current version writes and returns the next one (0 = absent)',
          async () => {
            expect(await setIf(`${p}k`, text('one'), 0)).toBe(1)
            expect(str(await store.get(`${p}k`))).toBe('one')
            expect(await setIf(`${p}k`, text('two'), 1)).toBe(2)
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'two', version: 2 })
          },
          timeout,
        )

        test(
          'any other version is a conflict reporting the current one, and writes nothing',
          async () => {
            await store.set(`${p}k`, text('first'))
            await store.set(`${p}k`, text('second'))
            expect(await setIf(`${p}k`, text('stale'), 1)).toEqual({ conflict: 2 })
            expect(await setIf(`${p}k`, text('ahead'), 3)).toEqual({ conflict: 2 })
            expect(await setIf(`${p}k`, text('create'), 0)).toEqual({ conflict: 2 })
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'second', version: 2 })
            // A missing id is version 0: anything else conflicts, and it stays missing.
            expect(await setIf(`${p}missing`, text('x'), 1)).toEqual({ conflict: 0 })
            expect(await store.get(`${p}missing`)).toBeUndefined()
            expect(await versioned(`${p}missing`)).toBeUndefined()
          },
          timeout,
        )

        test(
          'of concurrent setIfVersion calls with the same version, exactly one wins',
          async () => {
            for (const expected of [0, 1]) {
              const tries = Array.from({ length: 10 }, (_, i) => setIf(`${p}race`, text(`writer ${i} at ${expected}`), expected))
              const results = await Promise.all(tries)
              const winners = results.flatMap((r, i) => (typeof r === 'number' ? [i] : []))
              expect(winners).toHaveLength(1)
              expect(results[winners[0]!]).toBe(expected + 1)
              for (const r of results) if (typeof r !== 'number') expect(r).toEqual({ conflict: expected + 1 })
              expect(shown(await versioned(`${p}race`))).toEqual({ data: `writer ${winners[0]} at ${expected}`, version: expected + 1 })
            }
          },
          timeout,
        )

        test(
          'writes issued without waiting add one each',
          async () => {
            const writes: Promise<void>[] = []
            for (let i = 0; i < 200; i++) writes.push(Promise.resolve(store.set(`${p}hot`, text(`v${i}`))))
            await Promise.all(writes)
            expect(shown(await versioned(`${p}hot`))).toEqual({ data: 'v199', version: 200 })
          },
          timeout,
        )

        test(
          'a deleted id is absent again: version 0, and the next write is version 1',
          async () => {
            await store.set(`${p}k`, text('a'))
            await store.set(`${p}k`, text('b'))
            await store.delete(`${p}k`)
            expect(await versioned(`${p}k`)).toBeUndefined()
            expect(await setIf(`${p}k`, text('x'), 2)).toEqual({ conflict: 0 })
            expect(await setIf(`${p}k`, text('new'), 0)).toBe(1)
            expect(shown(await versioned(`${p}k`))).toEqual({ data: 'new', version: 1 })
          },
          timeout,
        )
      })
    }
  })
}

/** The store's features: from the options, or probed on a store made now (the caller disposes it after the suite). */
function features<S extends StateStore>(name: string, make: () => Promise<S> | S, options: StateStoreSuiteOptions<S>): Features<S> {
  const given = { list: options.list, versions: options.versions, dispose: options.dispose }
  if (given.list !== undefined && given.versions !== undefined && given.dispose !== undefined) {
    return { list: given.list, versions: given.versions, dispose: given.dispose, halfVersions: false }
  }
  const probe = make()
  if (probe && typeof (probe as { then?: unknown }).then === 'function') {
    // Swallow a rejection: the tests' own make() calls will report it.
    void (probe as Promise<S>).then(
      (s) => s.dispose?.(),
      () => undefined,
    )
    const missing = Object.entries(given)
      .filter(([, v]) => v === undefined)
      .map(([k]) => k)
    throw new Error(
      `testStateStore(${JSON.stringify(name)}): make() returned a promise, so which optional methods the store has cannot be found out while tests are registered. Pass ${missing.map((k) => `options.${k}`).join(', ')} (true or false).`,
    )
  }
  const store = probe as S
  const set = typeof store.setIfVersion === 'function'
  const get = typeof store.getVersioned === 'function'
  return {
    list: given.list ?? typeof store.list === 'function',
    versions: given.versions ?? (set && get),
    dispose: given.dispose ?? typeof store.dispose === 'function',
    halfVersions: given.versions === undefined && set !== get,
    probe: store,
  }
}

/** Ids of every awkward kind, all starting with `p`. */
function idsFor(p: string): string[] {
  return [
    `${p}zustand/🦀/ü`,
    `${p}a/b/c`,
    `${p}trailing/`,
    `${p}with:colons:`,
    `${p}with space and  two`,
    `${p}日本語 ünïcødé`,
    `${p}Case`,
    `${p}case`,
    `${p}%41~.state`,
    `${p}tab\tnewline\n`,
    p + 'x'.repeat(300 - p.length), // 300 characters
    p + 'é'.repeat(300 - p.length), // 300 characters, twice as many UTF-8 bytes
  ]
}

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

function str(b: Uint8Array | undefined): string | undefined {
  return b === undefined ? undefined : new TextDecoder().decode(b)
}

/** `b` as a plain Uint8Array (a Buffer is one, but jest's toEqual tells them apart). */
function plain(b: Uint8Array | undefined): Uint8Array | undefined {
  return b === undefined ? undefined : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

function shown(v: { data: Uint8Array; version: number } | undefined): { data: string; version: number } | undefined {
  return v && { data: str(v.data)!, version: v.version }
}

/** `n` bytes of xorshift32 noise: cheap, reproducible, and no run of repeated bytes to hide an off-by-one. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed | 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** Index of the first differing byte, or -1 (a loop: jest's toEqual on 16 MiB takes ages and prints them all). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}

interface RunnerGlobals {
  afterAll: typeof AfterAll
  afterEach: typeof AfterEach
  beforeEach: typeof BeforeEach
  describe: typeof Describe
  expect: typeof Expect
  test: typeof Test
}

/** The test runner's globals, looked up when the suite is registered (not when this module loads). */
function runnerGlobals(): RunnerGlobals {
  const g = globalThis as unknown as Partial<RunnerGlobals>
  for (const k of ['afterAll', 'afterEach', 'beforeEach', 'describe', 'expect', 'test'] as const) {
    if (typeof g[k] !== 'function')
      throw new Error(`testStateStore must run inside a test runner with jest-style globals (${k} is missing): jest, or vitest with globals: true.`)
  }
  return g as RunnerGlobals
}
