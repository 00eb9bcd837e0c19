/**
 * Inspection and telemetry of a runtime: one typed event stream with trace ids, metrics with
 * upstream EDGELESS's parity, Prometheus text, and an OpenTelemetry span export. All
 * platform-neutral; the live HTML inspector (Node) is `startInspector` in the Node entry.
 * @packageDocumentation
 */
export { inspectStream, traceOf, tracePath, INSPECTION_EVENT_TYPES } from './stream'
export type {
  InspectionEvent,
  InspectionEventType,
  InspectionSubject,
  Traced,
  ActorInstantiatedEvent,
  ActorInitialisedEvent,
  ActorSpawnedEvent,
  ActorStoppedEvent,
  ActorCrashedEvent,
  ActorRestartScheduledEvent,
  ActorRestartedEvent,
  ActorEscalatedEvent,
  LifecycleInspectionEvent,
  MessageEnqueuedEvent,
  MessageStartedEvent,
  MessageFinishedEvent,
  DeadLetterInspectionEvent,
  MailboxFullInspectionEvent,
  CastSentEvent,
  CallSentEvent,
  CallRepliedEvent,
  CallTimedOutEvent,
  CallCycleEvent,
  CallLateReplyEvent,
  TimerInfo,
  TimerSetEvent,
  TimerFiredEvent,
  TimerCancelledEvent,
  StateWrittenInspectionEvent,
  StateFailedInspectionEvent,
  LogInspectionEvent,
  WarningInspectionEvent,
  WorkflowStartedEvent,
  WorkflowStoppedEvent,
} from './stream'
export { collectMetrics, DEFAULT_BUCKETS } from './metrics'
export type { Metrics, MetricsOptions, MetricsSnapshot, FunctionMetrics, HistogramSnapshot, ExitCounts } from './metrics'
export { toPrometheus, escapeLabelValue, PROMETHEUS_CONTENT_TYPE } from './prometheus'
export type { PrometheusOptions } from './prometheus'
export { exportToOpenTelemetry } from './otel'
export type { OpenTelemetryOptions, TracerLike, SpanLike, SpanAttributeValue } from './otel'
