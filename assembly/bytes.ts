// Byte payloads and their text. Payloads are plain Uint8Arrays; these helpers convert
// between them and AssemblyScript's (UTF-16) strings with the semantics of the Rust API:
//
//   utf8(s)          encodes s as UTF-8; a lone surrogate becomes U+FFFD (EF BF BD), so the
//                    bytes are always valid UTF-8 (what the host expects of aliases and logs)
//   text(b)          decodes leniently, exactly like Rust's String::from_utf8_lossy (and the
//                    WHATWG decoder): each maximal invalid subsequence becomes one U+FFFD
//   textStrict(b)    decodes strictly like core::str::from_utf8: null for invalid UTF-8
//   fmtBytes(b)      Rust's {:?} of a byte slice: "[80, 73, 78, 71]", "[]" when empty

/** The UTF-8 bytes of `s` (lone surrogates become U+FFFD). */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE));
}

/** `b` decoded as UTF-8, invalid sequences replaced by U+FFFD (String::from_utf8_lossy). */
export function text(b: Uint8Array): string {
  return decode(b.dataStart, <usize>b.byteLength);
}

/** `b` decoded as UTF-8, or null if it is not valid UTF-8 (core::str::from_utf8). */
export function textStrict(b: Uint8Array): string | null {
  if (!isUtf8(b)) return null;
  return decode(b.dataStart, <usize>b.byteLength);
}

/** True when `b` is valid UTF-8. */
export function isUtf8(b: Uint8Array): bool {
  let p = b.dataStart;
  let end = p + <usize>b.byteLength;
  while (p < end) {
    let b0 = <u32>load<u8>(p);
    if (b0 < 0x80) { p++; continue; }
    let n = seqLength(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

/** Rust's `{:?}` of a byte slice: "[1, 2, 3]"; "[]" when empty. */
export function fmtBytes(b: Uint8Array): string {
  let n = b.length;
  if (n == 0) return "[]";
  let src = b.dataStart;
  let units = 2 + 2 * (n - 1); // brackets and ", " separators
  for (let i = 0; i < n; i++) {
    let v = load<u8>(src + <usize>i);
    units += v >= 100 ? 3 : v >= 10 ? 2 : 1;
  }
  // @ts-ignore: a runtime built-in the editor typings lack
  let out = changetype<string>(__new(<usize>units << 1, idof<string>()));
  let o = changetype<usize>(out);
  store<u16>(o, 0x5B); o += 2; // [
  for (let i = 0; i < n; i++) {
    if (i > 0) { store<u16>(o, 0x2C); store<u16>(o, 0x20, 2); o += 4; } // ", "
    let v = <u32>load<u8>(src + <usize>i);
    if (v >= 100) { store<u16>(o, 0x30 + v / 100); o += 2; }
    if (v >= 10) { store<u16>(o, 0x30 + (v / 10) % 10); o += 2; }
    store<u16>(o, 0x30 + v % 10); o += 2;
  }
  store<u16>(o, 0x5D); // ]
  return out;
}

/** True when `a` and `b` hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): bool {
  let n = a.byteLength;
  if (n != b.byteLength) return false;
  return memory.compare(a.dataStart, b.dataStart, <usize>n) == 0;
}

/** True when the bytes of `b` are the UTF-8 encoding of `s`. */
export function bytesEqualText(b: Uint8Array, s: string): bool {
  return bytesEqual(b, utf8(s));
}

/** True when `b` starts with the bytes of `prefix`. */
export function startsWith(b: Uint8Array, prefix: Uint8Array): bool {
  let n = prefix.byteLength;
  if (n > b.byteLength) return false;
  return memory.compare(b.dataStart, prefix.dataStart, <usize>n) == 0;
}

/** A new array holding the bytes of `a` followed by those of `b`. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  let out = new Uint8Array(a.length + b.length);
  memory.copy(out.dataStart, a.dataStart, <usize>a.byteLength);
  memory.copy(out.dataStart + <usize>a.byteLength, b.dataStart, <usize>b.byteLength);
  return out;
}

/** A new array holding a copy of `len` bytes at `ptr` (host memory handed to the guest). */
// @ts-ignore: decorator
@unsafe
export function copyFrom(ptr: usize, len: usize): Uint8Array {
  let out = new Uint8Array(<i32>len);
  if (len > 0) memory.copy(out.dataStart, ptr, len);
  return out;
}

// ---- UTF-8 internals ---------------------------------------------------------------------

/**
 * The length of the valid multi-byte UTF-8 sequence at `p` (2..4), or 0 if the sequence
 * starting there is invalid or truncated. `p` points at a byte >= 0x80.
 */
function seqLength(p: usize, end: usize): usize {
  let b0 = <u32>load<u8>(p);
  let need: usize;
  let lo: u32 = 0x80;
  let hi: u32 = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
  else if (b0 == 0xE0) { need = 2; lo = 0xA0; }
  else if (b0 == 0xED) { need = 2; hi = 0x9F; }
  else if (b0 >= 0xE1 && b0 <= 0xEF) need = 2;
  else if (b0 == 0xF0) { need = 3; lo = 0x90; }
  else if (b0 >= 0xF1 && b0 <= 0xF3) need = 3;
  else if (b0 == 0xF4) { need = 3; hi = 0x8F; }
  else return 0;
  for (let k: usize = 1; k <= need; k++) {
    if (p + k >= end) return 0;
    let b = <u32>load<u8>(p + k);
    if (b < lo || b > hi) return 0;
    lo = 0x80; hi = 0xBF;
  }
  return need + 1;
}

/**
 * Decodes [ptr, ptr+len) into a string. Invalid input is replaced like WHATWG / Rust's
 * from_utf8_lossy do: one U+FFFD per maximal subpart of an ill-formed sequence (the bytes
 * that are a valid prefix of some sequence), and the byte that broke it is looked at again.
 */
// @ts-ignore: decorator
@unsafe
export function decode(ptr: usize, len: usize): string {
  // Every byte yields at most one UTF-16 unit (a 4-byte sequence yields two).
  // @ts-ignore: a runtime built-in the editor typings lack
  let out = changetype<string>(__new(len << 1, idof<string>()));
  let o = changetype<usize>(out);
  let p = ptr;
  let end = ptr + len;
  while (p < end) {
    let b0 = <u32>load<u8>(p);
    if (b0 < 0x80) {
      store<u16>(o, b0); o += 2; p++;
      continue;
    }
    let need: u32;
    let lo: u32 = 0x80;
    let hi: u32 = 0xBF;
    let cp: u32;
    if (b0 >= 0xC2 && b0 <= 0xDF) { need = 1; cp = b0 & 0x1F; }
    else if (b0 == 0xE0) { need = 2; lo = 0xA0; cp = 0; }
    else if (b0 == 0xED) { need = 2; hi = 0x9F; cp = 0xD; }
    else if (b0 >= 0xE1 && b0 <= 0xEF) { need = 2; cp = b0 & 0x0F; }
    else if (b0 == 0xF0) { need = 3; lo = 0x90; cp = 0; }
    else if (b0 >= 0xF1 && b0 <= 0xF3) { need = 3; cp = b0 & 0x07; }
    else if (b0 == 0xF4) { need = 3; hi = 0x8F; cp = 4; }
    else {
      store<u16>(o, 0xFFFD); o += 2; p++;
      continue;
    }
    let q = p + 1;
    let ok = true;
    for (let k: u32 = 0; k < need; k++) {
      if (q >= end) { ok = false; break; }
      let b = <u32>load<u8>(q);
      if (b < lo || b > hi) { ok = false; break; }
      lo = 0x80; hi = 0xBF;
      cp = (cp << 6) | (b & 0x3F);
      q++;
    }
    p = q;
    if (!ok) {
      store<u16>(o, 0xFFFD); o += 2;
    } else if (cp < 0x10000) {
      store<u16>(o, cp); o += 2;
    } else {
      cp -= 0x10000;
      store<u16>(o, 0xD800 | (cp >> 10));
      store<u16>(o, 0xDC00 | (cp & 0x3FF), 2);
      o += 4;
    }
  }
  // @ts-ignore: a runtime built-in the editor typings lack
  return changetype<string>(__renew(changetype<usize>(out), o - changetype<usize>(out)));
}
