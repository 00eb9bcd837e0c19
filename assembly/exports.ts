// The exports of the EDGELESS guest ABI (guest-abi.md). A function's entry file re-exports
// them with
//
//     export * from "edgeless/assembly/exports";
//
// and so has exactly the exports of a Rust guest: memory, edgeless_mem_alloc,
// edgeless_mem_free, edgeless_mem_clear and the four handle_*_asm.
//
// Memory ownership:
//   * edgeless_mem_alloc / edgeless_mem_free manage raw blocks of the runtime's TLSF
//     allocator (heap.alloc / heap.free): outside the garbage collector, freed exactly when
//     the host frees them, like std::alloc in a Rust guest. A zero-length request gets a
//     static non-null address that is never allocated (and that free ignores).
//   * Data the host passes in (sender ids, payload, init payload, state) is copied into
//     fresh GC-managed Uint8Arrays before the handler runs, so a handler may keep them;
//     the host frees its blocks right after the handler returns.
//   * A call reply is handed out zero-copy: out_ptr points into the reply's own
//     (GC-managed) buffer, which a global keeps alive until the next invocation starts (or
//     edgeless_mem_clear runs). So the host may read it after handle_call_asm returns and
//     must not free it, exactly as the ABI's reply-buffer rule says.
//   * Replies of calls the guest makes (call / callRaw) arrive in a block the host got
//     from edgeless_mem_alloc; the SDK copies them out and frees the block.

import { registeredFunction, InstanceId, CallRetKind } from "./function";
import { copyFrom } from "./bytes";

/** Returned for zero-length allocations: a valid, aligned address that is never handed out otherwise. */
const EMPTY_BLOCK: usize = memory.data(16, 16);

/** Larger requests cannot be served by TLSF; answering 0 lets the host report it cleanly. */
const MAX_ALLOC: usize = (1 << 30) - 64;

/** The buffer of the last call reply, kept alive until the next invocation (see above). */
let parkedReply: Uint8Array | null = null;

export function edgeless_mem_alloc(len: usize): usize {
  if (len == 0) return EMPTY_BLOCK;
  if (len > MAX_ALLOC) return 0;
  return heap.alloc(len);
}

export function edgeless_mem_free(ptr: usize, len: usize): void {
  if (ptr == 0 || len == 0 || ptr == EMPTY_BLOCK) return;
  heap.free(ptr);
}

/** Upstream calls this before every invocation; here it releases the last call reply. */
export function edgeless_mem_clear(): void {
  parkedReply = null;
}

export function handle_init_asm(payloadPtr: usize, payloadLen: usize, statePtr: usize, stateLen: usize): void {
  parkedReply = null;
  // len == 0 means None.
  let payload: Uint8Array | null = payloadLen > 0 ? copyFrom(payloadPtr, payloadLen) : null;
  let state: Uint8Array | null = stateLen > 0 ? copyFrom(statePtr, stateLen) : null;
  registeredFunction().handleInit(payload, state);
}

export function handle_cast_asm(nodePtr: usize, compPtr: usize, payloadPtr: usize, payloadLen: usize): void {
  parkedReply = null;
  registeredFunction().handleCast(InstanceId.read(nodePtr, compPtr), copyFrom(payloadPtr, payloadLen));
}

export function handle_call_asm(nodePtr: usize, compPtr: usize, payloadPtr: usize, payloadLen: usize, outPtrPtr: usize, outLenPtr: usize): i32 {
  parkedReply = null;
  let ret = registeredFunction().handleCall(InstanceId.read(nodePtr, compPtr), copyFrom(payloadPtr, payloadLen));
  let kind = ret.kind;
  if (kind == CallRetKind.Reply) {
    let data = ret.data;
    parkedReply = data;
    // Little-endian i32s; wasm stores need no alignment.
    store<u32>(outPtrPtr, <u32>data.dataStart);
    store<u32>(outLenPtr, <u32>data.byteLength);
    return 1;
  }
  return kind == CallRetKind.NoReply ? 0 : 2;
}

export function handle_stop_asm(): void {
  parkedReply = null;
  registeredFunction().handleStop();
}
