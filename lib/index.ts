/**
 * edgeless — run EDGELESS serverless functions inside ordinary applications.
 * This is the platform-neutral core (no `node:*` imports): it runs in Node, browsers and
 * Electron renderers. In Node, `import ... from 'edgeless'` resolves to the Node entry,
 * which adds file-path loading.
 * @packageDocumentation
 */
export { Runtime, ActorRef } from './runtime/runtime'
export type { RuntimeOptions, SpawnOptions, InstanceInfo, CallOptions } from './options'
export type { ActorStatus } from './actor/lifecycle'
export { EdgelessError, isEdgelessError } from './errors'
export type { ErrorCode } from './errors'
export { reply, noReply, err } from './call-result'
export type { CallResult, CallReturn } from './call-result'
export type { EdgeFunction, FunctionContext, LogLevel } from './js-function'
export type { InstanceId } from './ids'
export { formatInstanceId } from './ids'
export { utf8, encodeUtf8 } from './payload'
export type { Payload } from './payload'
export { realClock } from './clock'
export type { Clock } from './clock'
export type { RuntimeEvents, LogEvent, CrashEvent, DeadLetterEvent, WarningEvent, CallFailureEvent, Handler, TrapKind, LogLevelName } from './events'
export { FunctionModule, clearModuleCache, fetchLoader } from './wasm/loader'
export type { ModuleSource, SourceLoader } from './wasm/loader'
export type { AsyncVersionedStore, StateStore } from './state/store'
export { memoryStore } from './state/memory'
export { WorkflowHandle } from './workflow/workflow'
export type { WorkflowOptions, WorkflowInstanceInfo } from './workflow/workflow'
export type { WorkflowSpec, WorkflowFunctionSpec, WorkflowResourceSpec } from './workflow/spec'
export { formatProblem, PLACEMENT_ANNOTATIONS } from './workflow/spec'
export type { ResourceClass, ResourceInit, WorkflowProblem } from './workflow/resource'
export { httpEgress, httpEgressResource, DEFAULT_MAX_RESPONSE_BYTES } from './resources/http-egress'
export type { HttpEgressOptions } from './resources/http-egress'
export { egressPolicy, nonPublicRange } from './resources/egress-policy'
export type { EgressPolicy, EgressPolicyOptions } from './resources/egress-policy'
export { parseHttpRequest, parseHttpResponse } from './resources/http-types'
export type { EdgelessHTTPRequest, EdgelessHTTPResponse } from './resources/http-types'
export type {
  StatePolicy,
  RestartType,
  RestartStrategy,
  SupervisionOptions,
  BackoffOptions,
  OverflowPolicy,
  HostQuotas,
  StopOptions,
  IsolateGuest,
  EnumOption,
} from './options'
export { DEFAULT_QUOTAS, DEFAULT_FUEL, DEFAULT_MAX_MEMORY_BYTES, OPTION_VALUES } from './options'
export type { StateWriteOptions } from './state/writer'
export type { PassivationOptions, PassivationStats } from './actor/passivation'
export type { GuestLimits } from './wasm/limits'
export type { CrashRecord } from './events'
export type { Observer, ObservedActor, InvocationKind } from './observer'
export type { Transport, Recipient } from './routing/transport'
export type { Message, CallAnswer } from './routing/message'
export * from './inspect'
