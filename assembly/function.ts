// The function API: ids, call results, the EdgeFunction base class, and typed wrappers
// around the host imports of the guest ABI (see env.ts and guest-abi.md).

import {
  cast_asm, cast_raw_asm, call_asm, call_raw_asm, delayed_cast_asm,
  telemetry_log_asm, slf_asm, sync_asm,
} from "./env";
import { copyFrom } from "./bytes";

// ---- InstanceId -------------------------------------------------------------------------

const HEX = "0123456789abcdef";

/**
 * The address of a function instance: the UUID of the node it runs on and the UUID of the
 * instance (component), 16 raw bytes each, exactly as the host passes them.
 *
 * The 32 bytes are stored inline in the object (no separate buffers), so receiving a
 * message allocates one small object for its sender; `node` and `component` return
 * fresh copies.
 */
export class InstanceId {
  // The raw bytes, in memory order: node (n0, n1), then component (c0, c1).
  private n0: u64 = 0;
  private n1: u64 = 0;
  private c0: u64 = 0;
  private c1: u64 = 0;

  /** An id from the 16 bytes of each UUID. */
  constructor(node: Uint8Array, component: Uint8Array) {
    assert(node.length == 16 && component.length == 16, "InstanceId: node and component must be 16 bytes each");
    this.n0 = load<u64>(node.dataStart);
    this.n1 = load<u64>(node.dataStart, 8);
    this.c0 = load<u64>(component.dataStart);
    this.c1 = load<u64>(component.dataStart, 8);
  }

  /** @internal An id read from guest memory (a null pointer reads as zeros). */
  // @ts-ignore: decorator
  @unsafe
  static read(nodePtr: usize, componentPtr: usize): InstanceId {
    // @ts-ignore: a runtime built-in the editor typings lack
    let id = changetype<InstanceId>(__new(offsetof<InstanceId>(), idof<InstanceId>()));
    if (nodePtr != 0) {
      id.n0 = load<u64>(nodePtr);
      id.n1 = load<u64>(nodePtr, 8);
    }
    if (componentPtr != 0) {
      id.c0 = load<u64>(componentPtr);
      id.c1 = load<u64>(componentPtr, 8);
    }
    return id;
  }

  /** The inverse of toBytes(); null unless `b` is exactly 32 bytes. */
  static fromBytes(b: Uint8Array): InstanceId | null {
    if (b.length != 32) return null;
    return InstanceId.read(b.dataStart, b.dataStart + 16);
  }

  /** Parses "node-uuid/component-uuid" (the format of toString()); null if malformed. */
  static parse(s: string): InstanceId | null {
    let slash = s.indexOf("/");
    if (slash < 0) return null;
    let node = uuidFromString(s.substring(0, slash));
    let component = uuidFromString(s.substring(slash + 1));
    if (node === null || component === null) return null;
    return new InstanceId(node, component);
  }

  /** The node UUID (a copy, 16 bytes). */
  get node(): Uint8Array {
    let out = new Uint8Array(16);
    memory.copy(out.dataStart, this.nodePtr, 16);
    return out;
  }

  /** The component (function instance) UUID (a copy, 16 bytes). */
  get component(): Uint8Array {
    let out = new Uint8Array(16);
    memory.copy(out.dataStart, this.componentPtr, 16);
    return out;
  }

  /** @internal Address of the node UUID's 16 bytes inside this object. */
  get nodePtr(): usize { return changetype<usize>(this) + offsetof<InstanceId>("n0"); }

  /** @internal Address of the component UUID's 16 bytes inside this object. */
  get componentPtr(): usize { return changetype<usize>(this) + offsetof<InstanceId>("c0"); }

  /** The 32 bytes the host uses: node UUID, then component UUID. */
  toBytes(): Uint8Array {
    let out = new Uint8Array(32);
    memory.copy(out.dataStart, this.nodePtr, 32);
    return out;
  }

  /** True when both UUIDs are equal. */
  equals(other: InstanceId): bool {
    return this.n0 == other.n0 && this.n1 == other.n1 && this.c0 == other.c0 && this.c1 == other.c1;
  }

  /** "node-uuid/component-uuid" in canonical 8-4-4-4-12 lowercase hex, as the host formats ids. */
  toString(): string {
    return uuidToString(this.node) + "/" + uuidToString(this.component);
  }
}

/** The canonical 8-4-4-4-12 lowercase text of a 16-byte UUID. */
export function uuidToString(b: Uint8Array): string {
  assert(b.length == 16, "uuidToString: a UUID is 16 bytes");
  // @ts-ignore: a runtime built-in the editor typings lack
  let out = changetype<string>(__new(36 << 1, idof<string>()));
  let o = changetype<usize>(out);
  let hex = changetype<usize>(HEX);
  for (let i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) { store<u16>(o, 0x2D); o += 2; }
    let v = <usize>unchecked(b[i]);
    store<u16>(o, load<u16>(hex + ((v >> 4) << 1)));
    store<u16>(o, load<u16>(hex + ((v & 15) << 1)), 2);
    o += 4;
  }
  return out;
}

/** The 16 bytes of a UUID in 8-4-4-4-12 text (any case); null if malformed. */
export function uuidFromString(s: string): Uint8Array | null {
  if (s.length != 36) return null;
  let out = new Uint8Array(16);
  let j = 0;
  for (let i = 0; i < 36; i++) {
    let c = <i32>s.charCodeAt(i);
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != 0x2D) return null;
      continue;
    }
    let v = hexValue(c);
    if (v < 0) return null;
    if (j & 1) out[j >> 1] = <u8>(out[j >> 1] | v);
    else out[j >> 1] = <u8>(v << 4);
    j++;
  }
  return out;
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// ---- CallRet ----------------------------------------------------------------------------

/** What a call ends with (the ABI's 0 / 1 / 2). */
export enum CallRetKind {
  NoReply = 0,
  Reply = 1,
  Err = 2,
}

const EMPTY = new Uint8Array(0);

/**
 * The outcome of a call: the answer of handleCall, and what call() / callRaw() return.
 * `data` holds the reply bytes for a Reply and is empty otherwise.
 */
export class CallRet {
  /** Prefer the factories below; `data` must be empty unless `kind` is Reply. */
  constructor(public readonly kind: CallRetKind, public readonly data: Uint8Array) {}

  /** Answer with these bytes. */
  static reply(data: Uint8Array): CallRet {
    return new CallRet(CallRetKind.Reply, data);
  }

  /** Answer with the UTF-8 bytes of `s`. */
  static replyText(s: string): CallRet {
    return new CallRet(CallRetKind.Reply, Uint8Array.wrap(String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE)));
  }

  /** No answer (the caller gets NoReply). */
  static noReply(): CallRet {
    return NO_REPLY;
  }

  /** An error answer (the caller gets Err). */
  static err(): CallRet {
    return ERR;
  }

  get isReply(): bool { return this.kind == CallRetKind.Reply; }
  get isNoReply(): bool { return this.kind == CallRetKind.NoReply; }
  get isErr(): bool { return this.kind == CallRetKind.Err; }
}

const NO_REPLY = new CallRet(CallRetKind.NoReply, EMPTY);
const ERR = new CallRet(CallRetKind.Err, EMPTY);

// ---- EdgeFunction and registration ------------------------------------------------------

/**
 * What a function implements. Extend it, override the handlers you need, and register one
 * instance at the top level of your entry file:
 *
 *     class Pong extends EdgeFunction {
 *       handleCall(src: InstanceId, msg: Uint8Array): CallRet { return CallRet.replyText("PONG"); }
 *     }
 *     register(new Pong());
 *     export * from "edgeless/assembly/exports";
 *
 * The defaults do nothing (handleCall answers NoReply). Payloads are fresh copies the
 * handler may keep; `payload` / `state` of handleInit are null when there is none.
 */
export abstract class EdgeFunction {
  /** An asynchronous message from `src`. */
  handleCast(src: InstanceId, msg: Uint8Array): void {}
  /** A synchronous request from `src`; the CallRet is the answer. */
  handleCall(src: InstanceId, msg: Uint8Array): CallRet { return CallRet.noReply(); }
  /** Called once after instantiation with the init payload and the stored state (null = none). */
  handleInit(payload: Uint8Array | null, state: Uint8Array | null): void {}
  /** Called once when the instance is stopped gracefully. */
  handleStop(): void {}
}

let registered: EdgeFunction | null = null;

/** Makes `f` the function this module runs. Call it once, at the top level of the entry file. */
export function register(f: EdgeFunction): void {
  registered = f;
}

/** @internal The registered function; aborts with a clear message when there is none. */
export function registeredFunction(): EdgeFunction {
  let f = registered;
  if (f === null) {
    abort("no EdgeFunction registered: call register(new MyFunction()) at the top level of the entry file");
    unreachable();
  }
  return f!;
}

// ---- Scratch buffer for strings handed to the host --------------------------------------

// Aliases, log targets and log texts are encoded to UTF-8 into one raw buffer that is
// reused by every import call, so casting to an alias or logging allocates nothing on the
// GC heap. It grows to the largest string seen and is never freed (the host never sees it
// outside the import call it is passed to).
let scratchPtr: usize = 0;
let scratchCap: usize = 0;

function scratch(size: usize): usize {
  if (size > scratchCap) {
    let cap = max<usize>(size, max<usize>(scratchCap << 1, 256));
    scratchPtr = scratchPtr == 0 ? heap.alloc(cap) : heap.realloc(scratchPtr, cap);
    scratchCap = cap;
  }
  return scratchPtr;
}

/** Encodes `s` at `dst` (room for 3 bytes per UTF-16 unit); returns the byte length. */
// @ts-ignore: decorator
@inline
function encodeAt(s: string, dst: usize): usize {
  return String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, dst, false, String.UTF8.ErrorMode.REPLACE);
}

// Two 4-byte out slots for call_asm / call_raw_asm (little-endian i32 ptr and len). A guest
// runs one invocation at a time, so static slots are enough.
const OUT_SLOTS: usize = memory.data(8, 4);

/**
 * Turns the 0/1/2 of call_asm into a CallRet. On 1 the host put the reply into a block it
 * allocated with edgeless_mem_alloc: copy it out, then give the block back.
 */
function collectReply(rc: i32): CallRet {
  if (rc == 0) return NO_REPLY;
  if (rc != 1) return ERR;
  let ptr = <usize>load<u32>(OUT_SLOTS);
  let len = <usize>load<u32>(OUT_SLOTS, 4);
  let data = copyFrom(ptr, len);
  if (ptr != 0 && len != 0) heap.free(ptr);
  return new CallRet(CallRetKind.Reply, data);
}

// ---- Host calls --------------------------------------------------------------------------

/** Cast `payload` to `alias` (a name of the workflow's output mapping; "self" is this instance). */
export function cast(alias: string, payload: Uint8Array): void {
  let a = scratch(<usize>alias.length * 3);
  let al = encodeAt(alias, a);
  cast_asm(a, al, payload.dataStart, <usize>payload.byteLength);
}

/** Cast `payload` to an instance by its id. */
export function castRaw(target: InstanceId, payload: Uint8Array): void {
  cast_raw_asm(target.nodePtr, target.componentPtr, payload.dataStart, <usize>payload.byteLength);
}

/** Call `alias` and wait for its answer: Reply (with the bytes), NoReply or Err. */
export function call(alias: string, payload: Uint8Array): CallRet {
  let a = scratch(<usize>alias.length * 3);
  let al = encodeAt(alias, a);
  store<u64>(OUT_SLOTS, 0);
  let rc = call_asm(a, al, payload.dataStart, <usize>payload.byteLength, OUT_SLOTS, OUT_SLOTS + 4);
  return collectReply(rc);
}

/** Call an instance by its id and wait for its answer. */
export function callRaw(target: InstanceId, payload: Uint8Array): CallRet {
  store<u64>(OUT_SLOTS, 0);
  let rc = call_raw_asm(target.nodePtr, target.componentPtr, payload.dataStart, <usize>payload.byteLength, OUT_SLOTS, OUT_SLOTS + 4);
  return collectReply(rc);
}

/** Cast `payload` to `alias` ("self" allowed) after `delayMs` milliseconds. */
export function delayedCast(delayMs: u64, alias: string, payload: Uint8Array): void {
  let a = scratch(<usize>alias.length * 3);
  let al = encodeAt(alias, a);
  delayed_cast_asm(delayMs, a, al, payload.dataStart, <usize>payload.byteLength);
}

/** Persist `data` as this instance's state; the next handleInit of its state id receives it. */
export function sync(data: Uint8Array): void {
  sync_asm(data.dataStart, <usize>data.byteLength);
}

/** This instance's own id. */
export function slf(): InstanceId {
  let id = InstanceId.read(0, 0);
  slf_asm(id.nodePtr, id.componentPtr);
  return id;
}

// ---- Logging ----------------------------------------------------------------------------

/** Log levels of telemetry_log_asm. */
export enum Level {
  Error = 1,
  Warn = 2,
  Info = 3,
  Debug = 4,
  Trace = 5,
}

/** A log line at `level` (1 error .. 5 trace) for `target` (e.g. the function's name). */
export function log(level: Level, target: string, text: string): void {
  let tl = <usize>target.length * 3;
  let buf = scratch(tl + <usize>text.length * 3);
  let t = encodeAt(target, buf);
  let m = encodeAt(text, buf + t);
  telemetry_log_asm(<i32>level, buf, t, buf + t, m);
}

export function logError(target: string, text: string): void { log(Level.Error, target, text); }
export function logWarn(target: string, text: string): void { log(Level.Warn, target, text); }
export function logInfo(target: string, text: string): void { log(Level.Info, target, text); }
export function logDebug(target: string, text: string): void { log(Level.Debug, target, text); }
export function logTrace(target: string, text: string): void { log(Level.Trace, target, text); }

// ---- abort ------------------------------------------------------------------------------

// The compiler is run with `--use abort=__edgeless_abort`, so a failed assertion, an
// out-of-bounds access or an explicit abort() does not import env.abort (the host does not
// provide it): it logs "<message> at <file>:<line>:<column>" at error level with target
// "abort" through telemetry_log_asm, then traps. It writes into static memory without
// allocating, so it also works when the heap is exhausted.
function abortPut(o: usize, end: usize, s: string | null): usize {
  if (s === null) return o;
  let str = changetype<string>(s);
  // Room for the widest code point is checked per unit; stop quietly when full.
  for (let i = 0, n = str.length; i < n; i++) {
    if (o + 3 > end) break;
    let c = <u32>str.charCodeAt(i);
    if (c < 0x80) { store<u8>(o, c); o += 1; }
    else if (c < 0x800) { store<u8>(o, 0xC0 | (c >> 6)); store<u8>(o, 0x80 | (c & 63), 1); o += 2; }
    else {
      if ((c & 0xF800) == 0xD800) c = 0xFFFD; // surrogates: keep the output valid UTF-8
      store<u8>(o, 0xE0 | (c >> 12)); store<u8>(o, 0x80 | ((c >> 6) & 63), 1); store<u8>(o, 0x80 | (c & 63), 2); o += 3;
    }
  }
  return o;
}

function abortNum(o: usize, end: usize, n: u32): usize {
  if (o + 10 > end) return o;
  let digits: usize = 1;
  for (let m = n; m >= 10; m /= 10) digits++;
  let e = o + digits;
  let p = e;
  do { p--; store<u8>(p, 0x30 + n % 10); n /= 10; } while (n != 0);
  return e;
}

// @ts-ignore: decorator
@global
export function __edgeless_abort(message: string | null = null, fileName: string | null = null, lineNumber: u32 = 0, columnNumber: u32 = 0): void {
  // Static memory (not globals): abort may run before the module's globals are initialised.
  let buf = memory.data(512);
  let end = buf + 512;
  let o = abortPut(buf, end, message !== null ? message : "abort");
  if (fileName !== null) {
    o = abortPut(o, end, " at ");
    o = abortPut(o, end, fileName);
    o = abortPut(o, end, ":");
    o = abortNum(o, end, lineNumber);
    o = abortPut(o, end, ":");
    o = abortNum(o, end, columnNumber);
  }
  let target = memory.data<u8>([0x61, 0x62, 0x6F, 0x72, 0x74]); // "abort"
  telemetry_log_asm(<i32>Level.Error, target, 5, buf, o - buf);
  unreachable();
}
