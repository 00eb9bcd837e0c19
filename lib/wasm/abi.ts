/**
 * The guest ABI the host implements (upstream's `edgeless_function` imports and exports,
 * with their signatures), and the check of a module against it.
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import { formatSig, type FuncSig, type ModuleShape } from './parse'

const sig = (params: string[], results: string[] = []): FuncSig => ({ params, results })
const I = 'i32'

/** Exports the host calls, with their signatures (guest-abi.md). `optional` ones may be absent. */
export const GUEST_EXPORTS: Record<string, { sig: FuncSig; optional?: boolean }> = {
  edgeless_mem_alloc: { sig: sig([I], [I]) },
  edgeless_mem_free: { sig: sig([I, I]) },
  // Rust guests always export it; AssemblyScript or hand-written guests may not.
  edgeless_mem_clear: { sig: sig([]), optional: true },
  handle_init_asm: { sig: sig([I, I, I, I]) },
  handle_cast_asm: { sig: sig([I, I, I, I]) },
  handle_call_asm: { sig: sig([I, I, I, I, I, I], [I]) },
  handle_stop_asm: { sig: sig([]) },
}

/** Imports the host provides in module `env`, with their signatures. */
export const HOST_IMPORTS: Record<string, FuncSig> = {
  cast_asm: sig([I, I, I, I]),
  cast_raw_asm: sig([I, I, I, I]),
  call_asm: sig([I, I, I, I, I, I], [I]),
  call_raw_asm: sig([I, I, I, I, I, I], [I]),
  delayed_cast_asm: sig(['i64', I, I, I, I]),
  telemetry_log_asm: sig([I, I, I, I, I]),
  slf_asm: sig([I, I]),
  sync_asm: sig([I, I]),
}

/** The imports that may block the guest until another actor answers. */
export const SUSPENDING_IMPORTS = ['call_asm', 'call_raw_asm'] as const

const sameSig = (a: FuncSig, b: FuncSig) =>
  a.params.length === b.params.length &&
  a.results.length === b.results.length &&
  a.params.every((p, i) => p === b.params[i]) &&
  a.results.every((p, i) => p === b.results[i])

/**
 * Check a module against the guest ABI. Throws one {@link EdgelessError} naming the first
 * class of problem found and listing every offending export or import in `details`.
 */
export function validateShape(shape: ModuleShape, label: string): void {
  const unknown = shape.imports.filter((im) => !(im.module === 'env' && im.kind === 'function' && im.name in HOST_IMPORTS))
  if (unknown.length) {
    const names = unknown.map((im) => `${im.module}.${im.name} (${im.kind})`)
    throw new EdgelessError(
      'unknown-import',
      `${label} imports ${names.join(', ')}, which the EDGELESS host does not provide. A guest may import only these functions from "env": ${Object.keys(HOST_IMPORTS).join(', ')}. Remove the import (for Rust, avoid wasm-bindgen and WASI; build for wasm32-unknown-unknown).`,
      { imports: names },
    )
  }
  const badImports = shape.imports.filter((im) => im.sig && !sameSig(im.sig, HOST_IMPORTS[im.name]!))
  if (badImports.length) {
    const list = badImports.map((im) => `env.${im.name} is ${formatSig(im.sig!)}, expected ${formatSig(HOST_IMPORTS[im.name]!)}`)
    throw new EdgelessError(
      'unknown-import',
      `${label} imports host functions with the wrong signature: ${list.join('; ')}. Declare them exactly as guest-abi.md gives.`,
      { imports: list },
    )
  }
  const problems: string[] = []
  const memory = shape.exports.find((e) => e.name === 'memory')
  if (memory?.kind !== 'memory') problems.push('memory (a linear memory export named "memory")')
  for (const [name, want] of Object.entries(GUEST_EXPORTS)) {
    const got = shape.exports.find((e) => e.name === name)
    if (!got) {
      if (!want.optional) problems.push(`${name} ${formatSig(want.sig)} is missing`)
    } else if (got.kind !== 'function') {
      problems.push(`${name} is a ${got.kind}, expected a function ${formatSig(want.sig)}`)
    } else if (got.sig && !sameSig(got.sig, want.sig)) {
      problems.push(`${name} is ${formatSig(got.sig)}, expected ${formatSig(want.sig)}`)
    }
  }
  if (problems.length) {
    throw new EdgelessError(
      'missing-export',
      `${label} does not export the EDGELESS guest ABI: ${problems.join('; ')}. Export these (the edgeless_function crate's export! macro does; see guest-abi.md).`,
      { exports: problems },
    )
  }
}

/** Validate a precompiled module by names and kinds only (WebAssembly reflection has no signatures). */
export function shapeOfCompiled(mod: WebAssembly.Module): ModuleShape {
  return {
    imports: WebAssembly.Module.imports(mod).map((i) => ({ module: i.module, name: i.name, kind: i.kind as 'function' })),
    exports: WebAssembly.Module.exports(mod).map((e) => ({ name: e.name, kind: e.kind as 'function' })),
    signaturesKnown: false,
  }
}
