/**
 * The Chromium that the browser tests (and the inspector page's) drive through playwright-core,
 * found without any setup: Debian's /usr/bin/chromium when it is installed, else the Chromium
 * that the dev dependency `@sparticuz/chromium` ships inside its package (brotli files,
 * unpacked once per version into the temp folder; nothing is downloaded).
 * `EDGELESS_TEST_CHROMIUM` overrides the choice: `bundled` (the packaged one even when Debian's
 * is there), `system` (/usr/bin/chromium or fail), or a path to an executable.
 * @packageDocumentation
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { brotliDecompressSync } from 'node:zlib'
import { chromium, type BrowserContext } from 'playwright-core'

const SYSTEM = '/usr/bin/chromium'

/** What a headless Chromium needs here: no sandbox as root, and no background connections
 *  (the closed network refuses them). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** A Chromium to launch: its executable, the environment it needs, and which one it is. */
export interface ChromiumChoice {
  executablePath: string
  env: Record<string, string>
  kind: 'system' | 'bundled' | 'custom'
}

/**
 * Unpack @sparticuz/chromium's files into `<tmpdir>/edgeless-test-chromium-<version>` (once: a
 * folder is renamed into place only when complete, so concurrent test files never see half
 * of one): the binary, the SwiftShader libraries beside it, fonts, and the NSS libraries it
 * loads at run time (built for Amazon Linux, so a machine without Debian's Chromium does not
 * need libnss3).
 */
function bundledChromium(): ChromiumChoice {
  const require = createRequire(import.meta.url)
  let entry: string
  try {
    entry = require.resolve('@sparticuz/chromium')
  } catch (e) {
    throw new Error(
      `No Chromium for the browser tests: ${SYSTEM} is missing and the dev dependency @sparticuz/chromium is not installed (${(e as Error).message}). Run \`npm ci\`, or install Debian's: apt-get install -y --no-install-recommends chromium.`,
    )
  }
  const pkgDir = join(dirname(entry), '..')
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }
  const bin = join(pkgDir, 'bin')
  const dir = join(tmpdir(), `edgeless-test-chromium-${version}`)
  const choice: ChromiumChoice = {
    executablePath: join(dir, 'chromium'),
    env: { LD_LIBRARY_PATH: [join(dir, 'al2023/lib'), process.env['LD_LIBRARY_PATH']].filter(Boolean).join(':'), FONTCONFIG_PATH: join(dir, 'fonts') },
    kind: 'bundled',
  }
  if (existsSync(join(dir, 'chromium'))) return choice
  if (process.arch !== 'x64')
    throw new Error(
      `@sparticuz/chromium ships an x64 Chromium; this machine is ${process.arch}. Install Debian's: apt-get install -y --no-install-recommends chromium.`,
    )
  const part = `${dir}.part-${process.pid}`
  rmSync(part, { recursive: true, force: true })
  mkdirSync(part, { recursive: true })
  try {
    writeFileSync(join(part, 'chromium'), brotliDecompressSync(readFileSync(join(bin, 'chromium.br'))))
    chmodSync(join(part, 'chromium'), 0o755)
    const untar = (file: string, into: string) => {
      mkdirSync(into, { recursive: true })
      const r = spawnSync('tar', ['-x', '-f', '-', '-C', into], { input: brotliDecompressSync(readFileSync(join(bin, file))), maxBuffer: 1 << 30 })
      if (r.status !== 0) throw new Error(`tar could not unpack ${file}: ${r.stderr?.toString() ?? r.error}`)
    }
    untar('swiftshader.tar.br', part) // libEGL/libGLESv2 beside the binary, where it looks
    untar('fonts.tar.br', part) // fonts.conf + fonts/
    untar('al2023.tar.br', join(part, 'al2023')) // lib/libnss3.so...
    try {
      renameSync(part, dir)
    } catch (e) {
      // Another test file unpacked it first: theirs is as good.
      if (!existsSync(join(dir, 'chromium'))) throw e
    }
  } finally {
    rmSync(part, { recursive: true, force: true })
  }
  return choice
}

/** Which Chromium to drive (see the file's header for the rules and the override). */
export function findChromium(): ChromiumChoice {
  const want = process.env['EDGELESS_TEST_CHROMIUM']
  if (want === 'bundled') return bundledChromium()
  if (want === 'system' || (!want && existsSync(SYSTEM))) {
    if (!existsSync(SYSTEM))
      throw new Error(
        `EDGELESS_TEST_CHROMIUM=system, but ${SYSTEM} is missing: apt-get install -y --no-install-recommends chromium, or unset it to use the packaged one.`,
      )
    return { executablePath: SYSTEM, env: {}, kind: 'system' }
  }
  if (want) {
    if (!existsSync(want)) throw new Error(`EDGELESS_TEST_CHROMIUM=${want}: no such file (use "bundled", "system" or a path to a Chromium).`)
    return { executablePath: want, env: {}, kind: 'custom' }
  }
  return bundledChromium()
}

/**
 * A headless Chromium with a persistent profile in `profile` (Playwright wants it given this
 * way, not as --user-data-dir), its first page ready.
 */
export async function launchChromium(profile: string, viewport: { width: number; height: number }): Promise<BrowserContext> {
  const c = findChromium()
  return chromium.launchPersistentContext(profile, {
    executablePath: c.executablePath,
    env: { ...process.env, ...c.env } as Record<string, string>,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport,
  })
}
