// The host functions of the EDGELESS guest ABI (module "env"), declared exactly as
// /work/shared/spec/guest-abi.md gives them. Pointers and lengths are i32 on wasm32;
// the delay of delayed_cast_asm is an i64 (a u64 number of milliseconds).
//
// AssemblyScript emits an import only when the function is reachable, so a function
// imports just what it uses, like a Rust guest. These declarations are internal to the
// SDK: functions use the typed wrappers of index.ts.

// @ts-ignore: decorator
@external("env", "cast_asm")
export declare function cast_asm(target_ptr: usize, target_len: usize, payload_ptr: usize, payload_len: usize): void;

// @ts-ignore: decorator
@external("env", "cast_raw_asm")
export declare function cast_raw_asm(node_id_ptr: usize, component_id_ptr: usize, payload_ptr: usize, payload_len: usize): void;

// @ts-ignore: decorator
@external("env", "call_asm")
export declare function call_asm(target_ptr: usize, target_len: usize, payload_ptr: usize, payload_len: usize, out_ptr_ptr: usize, out_len_ptr: usize): i32;

// @ts-ignore: decorator
@external("env", "call_raw_asm")
export declare function call_raw_asm(node_id_ptr: usize, component_id_ptr: usize, payload_ptr: usize, payload_len: usize, out_ptr_ptr: usize, out_len_ptr: usize): i32;

// @ts-ignore: decorator
@external("env", "delayed_cast_asm")
export declare function delayed_cast_asm(delay_ms: u64, target_ptr: usize, target_len: usize, payload_ptr: usize, payload_len: usize): void;

// @ts-ignore: decorator
@external("env", "telemetry_log_asm")
export declare function telemetry_log_asm(level: i32, target_ptr: usize, target_len: usize, msg_ptr: usize, msg_len: usize): void;

// @ts-ignore: decorator
@external("env", "slf_asm")
export declare function slf_asm(out_node_id_ptr: usize, out_component_id_ptr: usize): void;

// @ts-ignore: decorator
@external("env", "sync_asm")
export declare function sync_asm(data_ptr: usize, data_len: usize): void;
