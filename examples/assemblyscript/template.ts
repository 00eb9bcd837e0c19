// A template EDGELESS function in AssemblyScript. Copy this file, rename the class, and
// build it with
//
//     npx edgeless build template.ts -o template.wasm
//
// (or `buildAssemblyScript('template.ts', 'template.wasm')` from 'edgeless'). The result is
// an ordinary EDGELESS guest module: spawn it with `rt.spawn({ name, module: 'template.wasm' })`
// or name it as the `code` of a workflow function, exactly like a module built from Rust.
//
// What this one does (replace it with your logic):
//   init  reads `greeting=<text>,repeat=<n>` from the init payload (defaults "hello", 1) and
//         the number of messages seen so far from its stored state;
//   cast  counts the message, persists the count (sync), and forwards
//         "<greeting> <message>" <repeat> times to the output "out";
//   call  answers "<greeting>, <n> message(s) so far" (a call with payload "fail" answers Err);
//   stop  logs the total.
//
// Rules of the road:
//   * Payloads are Uint8Array (binary-safe); utf8(s) / text(b) convert to and from strings.
//   * Keep state in top-level variables or in fields of your class: the instance lives as
//     long as the function instance. State that must survive a restart goes through sync().
//   * Outputs are aliases of the workflow's output mapping ("self" is this instance).
//   * call() blocks this instance until the answer comes (no timeouts, so never call a
//     function that calls you back).
//   * abort(), a failed assert() or an out-of-bounds access logs "<message> at <file:line>"
//     at error level (target "abort") and ends the instance, like a panic in Rust.

import {
  CallRet, EdgeFunction, InstanceId, bytesEqualText, cast, logInfo, parseInitPayload, parseU64,
  register, sync, text, utf8,
} from "edgeless/assembly";

const NAME = "template";

class Template extends EdgeFunction {
  greeting: string = "hello";
  repeat: u64 = 1;
  seen: u64 = 0;

  handleInit(payload: Uint8Array | null, state: Uint8Array | null): void {
    let config = parseInitPayload(payload);
    this.greeting = config.getString("greeting", "hello");
    this.repeat = config.getU64("repeat", 1);
    if (state !== null) this.seen = parseU64(text(state), 0);
    logInfo(NAME, "started: greeting=" + this.greeting + ", repeat=" + this.repeat.toString() + ", seen=" + this.seen.toString());
  }

  handleCast(src: InstanceId, msg: Uint8Array): void {
    this.seen++;
    sync(utf8(this.seen.toString()));
    let out = utf8(this.greeting + " " + text(msg));
    for (let i: u64 = 0; i < this.repeat; i++) cast("out", out);
  }

  handleCall(src: InstanceId, msg: Uint8Array): CallRet {
    if (bytesEqualText(msg, "fail")) return CallRet.err();
    return CallRet.replyText(this.greeting + ", " + this.seen.toString() + " message(s) so far");
  }

  handleStop(): void {
    logInfo(NAME, "stopping after " + this.seen.toString() + " message(s)");
  }
}

register(new Template());

// The ABI exports (edgeless_mem_alloc/free/clear, handle_*_asm): keep this line.
export * from "edgeless/assembly/exports";
