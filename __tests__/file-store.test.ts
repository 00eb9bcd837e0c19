// The Node file store (adapters/file.ts): byte-exact round trips, reversible file names for
// any id, ordering of concurrent writes, persistence, stray temp files, and a crash test
// that SIGKILLs a child process mid-burst and checks no state file is ever torn.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { fileStore } from '../adapters/file'

const root = fileURLToPath(new URL('..', import.meta.url))
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b))
const TEMP = /^\..+\.\d+\.\d+\.tmp$/

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeless-file-store-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** The pid of a process that has exited (so the sweep treats its temp files as strays). */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
    p.on('error', reject)
    p.on('exit', () => resolve(p.pid ?? -1))
  })
}

test('values round-trip byte for byte: every byte value, the empty value, 16 MiB', async () => {
  const store = fileStore({ dir: join(dir, 'a', 'b') })
  const all = Uint8Array.from({ length: 512 }, (_, i) => i % 256)
  const big = new Uint8Array(randomBytes(16 * 1024 * 1024))
  await store.set('all', all)
  await store.set('empty', new Uint8Array(0))
  await store.set('big', big)
  const got = await store.get('all')
  expect(got).toBeInstanceOf(Uint8Array)
  expect(got).toEqual(all)
  expect(await store.get('empty')).toEqual(new Uint8Array(0))
  const gotBig = await store.get('big')
  expect(gotBig?.length).toBe(big.length)
  expect(Buffer.compare(gotBig!, big)).toBe(0)
  expect((await store.list!()).sort()).toEqual(['all', 'big', 'empty'])
  await store.dispose!()
})

test('any id maps to its own safe file name and lists back exactly', async () => {
  const store = fileStore({ dir })
  const ids = [
    'plain',
    'A',
    'a',
    'ünïcødé',
    '🦀 crab',
    '日本語',
    'a/b/c',
    '/',
    '..',
    '.',
    '.hidden',
    '../../etc/passwd',
    'C:\\Windows\\system32',
    'with space',
    ':colon:',
    'x.state',
    '%41',
    '%',
    '~',
    '',
    '\n\t\0',
    'NUL',
    '\uD800',
    '\uFFFD',
    '\uDC00\uD800', // lone surrogates stay distinct from U+FFFD and from each other
    'x'.repeat(500),
    'x'.repeat(499) + 'y',
    'é'.repeat(500),
    '🦀'.repeat(200),
    'x'.repeat(194),
    'x'.repeat(195),
  ]
  expect(new Set(ids).size).toBe(ids.length)
  for (const [i, id] of ids.entries()) await store.set(id, bytes(`value ${i}`))
  for (const [i, id] of ids.entries()) expect(text(await store.get(id))).toBe(`value ${i}`)
  expect((await store.list!()).sort()).toEqual([...ids].sort())

  const names = await readdir(dir)
  expect(names).toHaveLength(ids.length)
  for (const name of names) {
    expect(name).toMatch(/^[A-Za-z0-9_%~-][A-Za-z0-9_.%~-]*\.state$/)
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200)
  }
  // The documented format.
  expect(names).toEqual(
    expect.arrayContaining([
      'plain.state',
      'a%2Fb%2Fc.state',
      '%2E..state',
      '%2E.state',
      '%2Ehidden.state',
      'with%20space.state',
      '%25.state',
      'x'.repeat(194) + '.state',
      '%C3%BCn%C3%AFc%C3%B8d%C3%A9.state',
      '%ED%A0%80.state',
    ]),
  )
  expect(names.filter((n) => n.includes('~'))).toHaveLength(6) // '', and the five ids too long for a plain name
  expect(names).toContain('~' + 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.state') // sha256('')
  const header = await readFile(join(dir, 'a%2Fb%2Fc.state'))
  expect(header.toString('latin1')).toBe(`EDGELESS-STATE/1 a%2Fb%2Fc\nvalue ${ids.indexOf('a/b/c')}`)

  // A second store on the folder sees the same ids.
  expect((await fileStore({ dir }).list!()).sort()).toEqual([...ids].sort())
  await store.dispose!()
})

test('missing ids, delete, and a folder that does not exist yet', async () => {
  const sub = join(dir, 'not', 'yet')
  const store = fileStore({ dir: sub })
  expect(store.dir).toBe(sub)
  expect(await store.get('nope')).toBeUndefined()
  expect(await store.list!()).toEqual([])
  await store.delete('nope')
  await expect(stat(sub)).rejects.toMatchObject({ code: 'ENOENT' }) // created lazily, by the first write
  await store.set('k', bytes('v'))
  await store.set('keep', bytes('w'))
  await store.delete('k')
  await store.delete('k')
  expect(await store.get('k')).toBeUndefined()
  expect(await store.list!()).toEqual(['keep'])
  // Set and delete issued without awaiting land in call order.
  void store.set('k', bytes('1'))
  void store.delete('k')
  const last = store.set('k', bytes('2'))
  expect(text(await store.get('k'))).toBe('2')
  await last
  void store.set('k', bytes('3'))
  await store.delete('k')
  expect(await store.get('k')).toBeUndefined()
  await store.dispose!()
})

test('1,000 un-awaited writes to one id land in call order; get and list see them', async () => {
  const store = fileStore({ dir })
  const t0 = Date.now()
  const writes: Promise<void>[] = []
  for (let i = 0; i < 1000; i++) writes.push(Promise.resolve(store.set('hot', bytes(`v${i}:` + 'x'.repeat(i)))))
  // Issued after the writes, so it must see the newest.
  expect(text(await store.get('hot'))).toBe('v999:' + 'x'.repeat(999))
  await Promise.all(writes)
  expect(text(await store.get('hot'))).toBe('v999:' + 'x'.repeat(999))
  expect(await readdir(dir)).toEqual(['hot.state']) // no temp file left behind
  console.log(`1,000 fsync'd writes to one id: ${Date.now() - t0} ms`)
  await store.dispose!()
})

test('dispose waits for writes in flight; a new store on the folder sees them (persistence)', async () => {
  const store = fileStore({ dir })
  for (let i = 0; i < 50; i++) void store.set(`id${i % 5}`, bytes(`v${i}`))
  await store.dispose!()
  expect((await readdir(dir)).sort()).toEqual(['id0.state', 'id1.state', 'id2.state', 'id3.state', 'id4.state'])
  const again = fileStore({ dir })
  for (let k = 0; k < 5; k++) expect(text(await again.get(`id${k}`))).toBe(`v${45 + k}`)
  expect((await again.list!()).sort()).toEqual(['id0', 'id1', 'id2', 'id3', 'id4'])
  await again.dispose!()
})

test('fsync: false still writes atomically', async () => {
  const store = fileStore({ dir, fsync: false })
  await store.set('k', bytes('one'))
  await store.set('k', bytes('two'))
  expect(text(await fileStore({ dir }).get('k'))).toBe('two')
  await store.dispose!()
})

test('stray temp files are ignored, and removed at first use when their writer is gone', async () => {
  await writeFile(join(dir, 'k.state'), 'EDGELESS-STATE/1 k\nold')
  const dead = await deadPid()
  const strays = [`.k.state.${dead}.1.tmp`, `.~abc.state.${dead}.7.tmp`]
  for (const s of strays) await writeFile(join(dir, s), 'EDGELESS-STATE/1 k\nhalf-writ')
  // A temp file with our own pid but older than this process: from an earlier process that had our pid.
  const ours = `.k.state.${process.pid}.3.tmp`
  await writeFile(join(dir, ours), 'EDGELESS-STATE/1 k\nhalf')
  const past = new Date(Date.now() - process.uptime() * 1000 - 60_000)
  await utimes(join(dir, ours), past, past)
  // A live process's temp file is left alone (it may be writing it).
  const live = `.k.state.${process.ppid}.1.tmp`
  await writeFile(join(dir, live), 'in progress')
  // And a fresh temp file of our own pid could be another store's write in flight.
  const fresh = `.k.state.${process.pid}.999999.tmp`
  await writeFile(join(dir, fresh), 'in progress')

  const store = fileStore({ dir })
  expect(text(await store.get('k'))).toBe('old')
  expect(await store.list!()).toEqual(['k'])
  await store.dispose!() // waits for the sweep
  expect((await readdir(dir)).sort()).toEqual([fresh, live, 'k.state'].sort())
})

test('foreign files are not listed; a corrupt state file makes get reject', async () => {
  await writeFile(join(dir, 'notes.txt'), 'hello')
  await writeFile(join(dir, '%41.state'), 'EDGELESS-STATE/1 A\nx') // non-canonical spelling of 'A'
  await writeFile(join(dir, 'bad%ZZ.state'), 'x')
  await writeFile(join(dir, 'torn.state'), 'EDGELESS-STAT')
  await writeFile(join(dir, 'other.state'), 'EDGELESS-STATE/1 another\nx')
  await writeFile(join(dir, 'x~0.state'), 'no header at all')
  const store = fileStore({ dir })
  expect((await store.list!()).sort()).toEqual(['other', 'torn'])
  await expect(store.get('torn')).rejects.toThrow(/not an edgeless state file/)
  await expect(store.get('other')).rejects.toThrow(/holds state "another", not "other"/)
  await store.dispose!()
})

test('a failed write rejects with the original error and leaves no temp file', async () => {
  // A non-empty folder where the state file should be: the rename over it fails.
  await mkdir(join(dir, 'k.state'))
  await writeFile(join(dir, 'k.state', 'inside'), '')
  const store = fileStore({ dir })
  await expect(store.set('k', bytes('v'))).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) })
  expect(await readdir(dir)).toEqual(['k.state'])
  // The chain goes on after a failure.
  await store.set('k2', bytes('ok'))
  expect(text(await store.get('k2'))).toBe('ok')
  // A folder that cannot be made rejects too.
  await writeFile(join(dir, 'file'), '')
  await expect(fileStore({ dir: join(dir, 'file', 'sub') }).set('k', bytes('v'))).rejects.toMatchObject({ code: 'ENOTDIR' })
  await store.dispose!()
})

// ----- crash test -----

const CHILD = `
import { fileStore } from './file-store.mjs'
const [dir, base, idsJson] = process.argv.slice(2)
const ids = JSON.parse(idsJson)
const store = fileStore({ dir })
// Prints nothing; tells the parent over IPC that the burst starts, so its kill timer skips Node's boot.
process.send('ready')
// One tight write loop per id, all at once; version numbers are unique across ids.
await Promise.all(ids.map(async (id, i) => {
  for (let n = 0; ; n++) {
    const v = Number(base) + n * ids.length + i
    const pad = 'x'.repeat(Math.floor(Math.random() * 65537))
    await store.set(id, new TextEncoder().encode(JSON.stringify({ v, pad })))
  }
}))
`

/** The version number in `body`, after checking it is exactly a value the child writes. */
function checkVersion(body: string, where: string): number {
  let o: unknown
  try {
    o = JSON.parse(body)
  } catch {
    throw new Error(`${where}: not JSON (${body.length} bytes): ${JSON.stringify(body.slice(0, 80))}`)
  }
  const { v, pad } = o as { v: unknown; pad: unknown }
  if (
    !o ||
    typeof o !== 'object' ||
    Object.keys(o).join() !== 'v,pad' ||
    !Number.isSafeInteger(v) ||
    typeof pad !== 'string' ||
    !/^x*$/.test(pad) ||
    pad.length > 65536 ||
    JSON.stringify({ v, pad }) !== body
  ) {
    throw new Error(`${where}: not a version the child writes: ${JSON.stringify(body.slice(0, 80))}`)
  }
  return v as number
}

test('a writer SIGKILLed mid-burst never leaves a torn, empty or half-written state file', async () => {
  const src = await readFile(join(root, 'adapters', 'file.ts'), 'utf8')
  const js = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
  }).outputText
  await writeFile(join(dir, 'file-store.mjs'), js)
  await writeFile(join(dir, 'child.mjs'), CHILD)
  const states = join(dir, 'states')
  const ids = ['counter', 'user/42', 'ünï:cødé 🦀', '', 'long-' + 'z'.repeat(300)]

  const ROUNDS = 30
  const t0 = Date.now()
  let roundsWithWrites = 0
  let roundsWithStrays = 0
  let versionsSeen = 0
  let bootMs = 0
  for (let round = 1; round <= ROUNDS; round++) {
    const base = round * 1_000_000
    const child = spawn(process.execPath, [join(dir, 'child.mjs'), states, String(base), JSON.stringify(ids)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    // Node takes ~100-200 ms to boot and import; count the 20-200 ms from the start of the burst.
    const spawned = Date.now()
    await Promise.race([new Promise((r) => child.once('message', r)), exited])
    bootMs += Date.now() - spawned
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 180))
    child.kill('SIGKILL')
    // Killed by us, not dead of its own error.
    expect({ signal: await exited, stderr }).toEqual({ signal: 'SIGKILL', stderr: '' })

    // The raw files: each state file is a header line and a whole version; temp files are hidden.
    let names: string[] = []
    try {
      names = await readdir(states)
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e
    }
    let newest = 0
    for (const name of names) {
      if (name.startsWith('.')) {
        expect(name).toMatch(TEMP)
        continue
      }
      const raw = (await readFile(join(states, name))).toString('utf8')
      const nl = raw.indexOf('\n')
      expect(nl).toBeGreaterThan(0)
      expect(raw.slice(0, nl)).toMatch(/^EDGELESS-STATE\/1 \S*$/)
      newest = Math.max(newest, checkVersion(raw.slice(nl + 1), `round ${round}, ${name}`))
    }
    if (names.some((n) => n.startsWith('.'))) roundsWithStrays++
    if (newest >= base) roundsWithWrites++

    // Through a store: list gives only the child's ids, each with a whole version.
    const reader = fileStore({ dir: states })
    const listed = await reader.list!()
    expect(listed.every((id) => ids.includes(id))).toBe(true)
    expect(listed).toHaveLength(names.filter((n) => !n.startsWith('.')).length)
    for (const id of listed) {
      const got = await reader.get(id)
      checkVersion(text(got)!, `round ${round}, id ${JSON.stringify(id)}`)
      versionsSeen++
    }
    await reader.dispose!() // its first-use sweep removes the dead child's temp files
    expect((await readdir(states).catch(() => [])).filter((n) => n.startsWith('.'))).toEqual([])
  }
  console.log(
    `crash test: ${ROUNDS} kills in ${Date.now() - t0} ms (child boot ${Math.round(bootMs / ROUNDS)} ms on average); ${roundsWithWrites} after the child had written this round, ` +
      `${roundsWithStrays} left a temp file behind (killed mid-write); ${versionsSeen} state files checked`,
  )
  // Not vacuous: many kills hit a child that was busy writing.
  expect(roundsWithWrites).toBeGreaterThanOrEqual(ROUNDS / 2)
  expect(roundsWithStrays).toBeGreaterThanOrEqual(1)
}, 60_000)
