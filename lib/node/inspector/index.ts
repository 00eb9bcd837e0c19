/**
 * The live inspector of the Node entry (see `server.ts`).
 * @packageDocumentation
 */
export { startInspector } from './server'
export type { Inspector, InspectorOptions } from './server'
export type { InspectorState, InspectorGraph, InspectorNode, InspectorEdge, InspectorFunction } from './model'
