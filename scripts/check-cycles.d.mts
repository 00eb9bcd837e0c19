// Types for scripts/check-cycles.mjs, which __tests__/architecture.test.ts imports.

/** file -> (imported file -> true when every statement between them is `import type`/`export type`). */
export type ImportGraph = Map<string, Map<string, boolean>>

/** One strongly connected component of the import graph. */
export interface Cycle {
  /** Its files, relative to the root, sorted. */
  files: string[]
  /** Shortest cycles `a.ts -> b.ts -> a.ts` that together use every import edge inside it. */
  chains: string[]
}

export interface CheckResult {
  files: number
  cycles: Cycle[]
  /** Cycles not in the allowlist. */
  unexpected: Cycle[]
  /** Allowlist entries no longer found. */
  stale: string[][]
  lines: string[]
  exitCode: 0 | 1
}

export const ROOT: string
export const ALLOWLIST: string
export function listTsFiles(dir: string): string[]
export function stripComments(src: string): string
export function parseImports(src: string): { specifier: string; typeOnly: boolean }[]
export function resolveSpecifier(fromFile: string, specifier: string): string | null
export function buildGraph(dirs: string[]): ImportGraph
export function stronglyConnected<T>(nodes: T[], successors: (v: T) => Iterable<T>): T[][]
export function findCycles(graph: ImportGraph, options?: { typeOnlyOk?: boolean; root?: string }): Cycle[]
export function checkCycles(options?: { dirs?: string[]; root?: string; typeOnlyOk?: boolean; allowed?: string[][] }): CheckResult
export function readAllowlist(path?: string): string[][]
