/**
 * edgeless/testing — deterministic tests of functions and whole workflows: virtual time,
 * a message trace, stubs, injected messages, seeded interleaving; and the shared
 * conformance suite for state-store adapters. Platform neutral (no node:* imports).
 * Jest matchers are in `edgeless/testing/jest`.
 * @packageDocumentation
 */
export { TestKit, createTestKit, seededRandom } from './kit'
export type { TestKitOptions } from './kit'
export { VirtualClock } from './virtual-clock'
export { Trace, showBytes } from './trace'
export type { TraceEntry, TraceKind } from './trace'
export { Stub } from './stub'
export type { StubScript, Received } from './stub'
export { testStateStore } from './store-conformance'
export type { StateStoreSuiteOptions } from './store-conformance'
