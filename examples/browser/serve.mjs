#!/usr/bin/env node
// Serves the browser example: `npm run example:browser` (builds dist/ first), then open the
// URL it prints. Options: --port N (default 8080, or $PORT; 0 picks a free one), --host H
// (default 127.0.0.1).
//
// What it does:
//  * bundles examples/browser/main.js with esbuild, in memory, as a browser bundler would:
//    'edgeless' resolves through package.json's exports map with the "browser" condition to
//    the platform-neutral core (dist/index.js); its dependencies come from node_modules, and
//    binaryen (15 MB, needed to asyncify modules that make blocking calls) is a separate
//    chunk the core loads only when it needs it. Served at /examples/browser/bundle/.
//  * serves the repository root read-only (GET and HEAD; nothing under a dot-folder such as
//    .git), with the right MIME types (application/wasm for .wasm, so streaming compilation
//    works) and no caching, on 127.0.0.1 only.
//  * sends the cross-origin isolation headers, COOP `same-origin` and COEP `require-corp`
//    (and CORP `same-origin`). The example does not need them yet; SharedArrayBuffer and
//    Atomics.wait do, which running functions in isolated workers will use. A page served
//    with them can load only same-origin resources, or ones sent with CORP/CORS headers.
//
// To host the example elsewhere, bundle it once and serve the folder statically with the
// same headers:
//   npx esbuild examples/browser/main.js --bundle --format=esm --splitting \
//     --platform=browser --external:'node:*' --outdir=examples/browser/bundle
import { createReadStream } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { extname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const ROOT = resolve(here, '../..')
const EXAMPLE = '/examples/browser/'
const BUNDLE = `${EXAMPLE}bundle/`

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wat': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.rs': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
}

const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
}

/**
 * Bundle main.js for the browser, in memory. Returns the files by URL path, and what the
 * bare specifiers resolved to (for the start-up message).
 */
export async function bundleExample() {
  let esbuild
  try {
    esbuild = await import('esbuild')
  } catch (e) {
    throw new Error(`serve.mjs needs esbuild (a devDependency of edgeless): run npm install (${e.message})`)
  }
  try {
    await stat(join(ROOT, 'dist/index.js'))
  } catch {
    throw new Error('dist/ is missing: run `npm run build` first (npm run example:browser does)')
  }
  const outdir = join(ROOT, 'examples/browser/bundle')
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, 'examples/browser/main.js')],
    bundle: true,
    format: 'esm',
    splitting: true,
    platform: 'browser',
    target: 'es2022',
    // binaryen's own Node code path (`await import('node:module')`, taken only when
    // process.versions.node is set): never run in a page, so left out of the bundle.
    external: ['node:*'],
    outdir,
    write: false,
    metafile: true,
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
  })
  const files = new Map()
  for (const f of result.outputFiles) {
    const path = BUNDLE + relative(outdir, f.path).split(sep).join('/')
    files.set(path, { body: Buffer.from(f.contents), type: MIME[extname(f.path)] ?? 'application/octet-stream' })
  }
  const inputs = Object.keys(result.metafile.inputs)
  const core = inputs.filter((i) => /^dist\/(index|node)\.js$/.test(i))
  const chunks = Object.entries(result.metafile.outputs)
    .filter(([p]) => p.endsWith('.js'))
    .map(([p, o]) => ({ file: relative(outdir, join(ROOT, p)), bytes: o.bytes, entry: o.entryPoint === 'examples/browser/main.js' }))
  return { files, core, chunks }
}

/** Start the server. Resolves once it listens; `url` is the example page. */
export async function startServer({ port = 8080, host = '127.0.0.1' } = {}) {
  const bundle = await bundleExample()
  const server = createServer((req, res) => {
    handle(req, res, bundle.files).catch((e) => {
      if (!res.headersSent) send(res, 500, `internal error: ${e.message}\n`)
      else res.destroy(e)
    })
  })
  await new Promise((ok, fail) => {
    server.once('error', fail)
    server.listen(port, host, () => {
      server.off('error', fail)
      ok()
    })
  })
  const address = server.address()
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}${EXAMPLE}`
  return {
    url,
    port: address.port,
    bundle,
    server,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok())
        server.closeAllConnections()
      }),
  }
}

function send(res, status, text, headers = {}) {
  res.writeHead(status, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8', ...headers })
  res.end(text)
}

async function handle(req, res, bundled) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'read-only: GET and HEAD only\n', { Allow: 'GET, HEAD' })
  let path
  try {
    path = decodeURIComponent(new URL(req.url, 'http://x').pathname)
  } catch {
    return send(res, 400, 'bad path\n')
  }
  if (path === '/') return send(res, 302, `see ${EXAMPLE}\n`, { Location: EXAMPLE })
  const head = req.method === 'HEAD'

  const mem = bundled.get(path)
  if (mem) {
    res.writeHead(200, { ...HEADERS, 'Content-Type': mem.type, 'Content-Length': mem.body.length })
    return res.end(head ? undefined : mem.body)
  }

  // Files under the root only: no NUL, no dot segments (.git, .., .env), no symlink out.
  const segments = path.split('/').slice(1)
  if (path.includes('\0') || segments.some((s) => s.startsWith('.'))) return send(res, 404, 'not found\n')
  let file = join(ROOT, ...segments)
  let st
  try {
    st = await stat(file)
    if (st.isDirectory()) {
      if (!path.endsWith('/')) return send(res, 301, 'moved\n', { Location: `${path}/` })
      file = join(file, 'index.html')
      st = await stat(file)
    }
    const real = await realpath(file)
    if (real !== ROOT && !real.startsWith(ROOT + sep)) return send(res, 404, 'not found\n')
  } catch {
    return send(res, 404, 'not found\n')
  }
  if (!st.isFile()) return send(res, 404, 'not found\n')
  res.writeHead(200, { ...HEADERS, 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Content-Length': st.size })
  if (head) return res.end()
  createReadStream(file)
    .on('error', (e) => res.destroy(e))
    .pipe(res)
}

function option(args, name) {
  const i = args.indexOf(name)
  if (i === -1) return undefined
  const v = args[i + 1]
  if (v === undefined) throw new Error(`${name} needs a value`)
  return v
}

if (process.argv[1] && import.meta.url === pathToFileURL(await realpath(process.argv[1])).href) {
  try {
    const args = process.argv.slice(2)
    const port = Number(option(args, '--port') ?? process.env.PORT ?? 8080)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${option(args, '--port') ?? process.env.PORT}`)
    const host = option(args, '--host') ?? '127.0.0.1'
    const s = await startServer({ port, host })
    const lazy = s.bundle.chunks.filter((c) => !c.entry && c.bytes > 100_000).map((c) => `${c.file} (${(c.bytes / 1e6).toFixed(1)} MB)`)
    console.log(
      `bundled examples/browser/main.js with esbuild: 'edgeless' -> ${s.bundle.core.join(', ')} (the "browser" condition); loaded on demand: ${lazy.join(', ') || 'nothing'}`,
    )
    console.log(`serving ${ROOT} read-only, cross-origin isolated (COOP same-origin, COEP require-corp)`)
    console.log(`edgeless browser example: ${s.url}`)
    const stop = () => {
      s.close().then(() => process.exit(0))
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  } catch (e) {
    console.error(`serve.mjs: ${e.message}`)
    process.exit(e.code === 'EADDRINUSE' ? 2 : 1)
  }
}
