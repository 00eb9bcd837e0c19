// edgeless/assembly: write EDGELESS functions in AssemblyScript.
//
//     import { EdgeFunction, InstanceId, CallRet, register, logInfo, utf8 } from "edgeless/assembly";
//
//     class Pong extends EdgeFunction {
//       handleCall(src: InstanceId, msg: Uint8Array): CallRet {
//         logInfo("pong", "called by " + src.toString());
//         return CallRet.reply(utf8("PONG"));
//       }
//     }
//     register(new Pong());
//
//     // The ABI exports (edgeless_mem_*, handle_*_asm): every entry file needs this line.
//     export * from "edgeless/assembly/exports";
//
// Build with `edgeless build fn.ts -o fn.wasm` (or buildAssemblyScript from 'edgeless').
// See README.md next to this file.

export {
  InstanceId, uuidToString, uuidFromString,
  CallRet, CallRetKind,
  EdgeFunction, register,
  cast, castRaw, call, callRaw, delayedCast, sync, slf,
  Level, log, logError, logWarn, logInfo, logDebug, logTrace,
} from "./function";

export {
  utf8, text, textStrict, isUtf8, fmtBytes,
  bytesEqual, bytesEqualText, startsWith, concat,
} from "./bytes";

export {
  InitPayload, parseInitPayload, parseF64, parseU64, isU64, trimWhitespace,
} from "./init-payload";
