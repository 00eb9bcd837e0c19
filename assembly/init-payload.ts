// Init-payload parsing, with the semantics of the Rust fixtures' sdk_init_payload.rs.
//
// The format is upstream's `init-payload` workflow annotation, `key=value,key2=value2`:
//   * the text is split on ','; each item is split on its FIRST '='
//     ("a=b=c" gives key "a" and value "b=c");
//   * keys and values are trimmed of whitespace (Unicode White_Space, like Rust's str::trim);
//   * an item that is empty after trimming, or whose key is empty ("=5"), is skipped;
//   * an item without '=' gives that key with an empty value ("verbose");
//   * a key given twice: the last one wins, and the pair moves to the end;
//   * no payload gives an empty map; invalid UTF-8 is decoded lossily (U+FFFD).
// Numbers: parseF64 accepts what Rust's f64::from_str accepts after trimming ("1.5", "-2",
// "1e3", ".5", "1.", "inf", "-infinity", any case) except NaN, which it rejects; it returns
// NaN for "not a number", so `isNaN(parseF64(s))` tells a bad value. parseU64 accepts what
// u64::from_str accepts after trimming ("42", "+42"; no "-", no overflow).

import { text } from "./bytes";

/** The parsed `key=value,...` init payload. */
export class InitPayload {
  private ks: string[] = [];
  private vs: string[] = [];

  /** Parses the text of an init payload. */
  static parse(s: string): InitPayload {
    let p = new InitPayload();
    let items = s.split(",");
    for (let i = 0, n = items.length; i < n; i++) {
      let item = unchecked(items[i]);
      let eq = item.indexOf("=");
      let key: string;
      let value: string;
      if (eq >= 0) {
        key = trimWhitespace(item.substring(0, eq));
        value = trimWhitespace(item.substring(eq + 1));
      } else {
        key = trimWhitespace(item);
        value = "";
      }
      if (key.length == 0) continue;
      let at = p.ks.indexOf(key);
      if (at >= 0) {
        p.ks.splice(at, 1);
        p.vs.splice(at, 1);
      }
      p.ks.push(key);
      p.vs.push(value);
    }
    return p;
  }

  /** Parses the payload handed to handleInit (null: no payload, an empty map). */
  static fromBytes(payload: Uint8Array | null): InitPayload {
    if (payload === null) return new InitPayload();
    return InitPayload.parse(text(payload));
  }

  /** The number of keys. */
  get size(): i32 { return this.ks.length; }

  /** The keys, in the order of their last occurrence. */
  keys(): string[] { return this.ks.slice(0); }

  /** The values, in the order of keys(). */
  values(): string[] { return this.vs.slice(0); }

  has(key: string): bool { return this.ks.includes(key); }

  /** The value of `key`, or null when the key is missing. */
  get(key: string): string | null {
    let at = this.ks.indexOf(key);
    return at < 0 ? null : unchecked(this.vs[at]);
  }

  /** The value of `key`, or `fallback` when the key is missing. */
  getString(key: string, fallback: string): string {
    let at = this.ks.indexOf(key);
    return at < 0 ? fallback : unchecked(this.vs[at]);
  }

  /** The value of `key` as f64, or `fallback` when missing or not a number. */
  getF64(key: string, fallback: f64): f64 {
    let v = this.get(key);
    if (v === null) return fallback;
    let x = parseF64(v);
    return isNaN(x) ? fallback : x;
  }

  /** The value of `key` as u64, or `fallback` when missing or not a u64. */
  getU64(key: string, fallback: u64): u64 {
    let v = this.get(key);
    if (v === null || !isU64(v)) return fallback;
    return parseU64(v);
  }

  /** True when `key` is present and its value is a number (tells a bad value from a missing key). */
  isF64(key: string): bool {
    let v = this.get(key);
    return v !== null && !isNaN(parseF64(v));
  }

  /** True when `key` is present and its value is a u64. */
  isU64(key: string): bool {
    let v = this.get(key);
    return v !== null && isU64(v);
  }
}

/** Parses the payload handed to handleInit (null: an empty map). */
export function parseInitPayload(payload: Uint8Array | null): InitPayload {
  return InitPayload.fromBytes(payload);
}

// ---- whitespace --------------------------------------------------------------------------

/** Unicode White_Space (Rust's char::is_whitespace); all of it lies in the BMP. */
function isWhitespace(c: u32): bool {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
    c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/** `s` without leading and trailing Unicode whitespace (Rust's str::trim; unlike JS trim, U+FEFF stays). */
export function trimWhitespace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isWhitespace(<u32>s.charCodeAt(start))) start++;
  while (end > start && isWhitespace(<u32>s.charCodeAt(end - 1))) end--;
  return start == 0 && end == s.length ? s : s.substring(start, end);
}

// ---- numbers -----------------------------------------------------------------------------

/** Case-insensitive ASCII comparison of s[from..] with the lowercase `word`. */
function restIs(s: string, from: i32, word: string): bool {
  if (s.length - from != word.length) return false;
  for (let i = 0, n = word.length; i < n; i++) {
    let c = <u32>s.charCodeAt(from + i);
    if (c >= 0x41 && c <= 0x5A) c += 0x20;
    if (c != <u32>word.charCodeAt(i)) return false;
  }
  return true;
}

// @ts-ignore: decorator
@inline function isDigit(c: i32): bool { return <u32>(c - 0x30) < 10; }

/**
 * `s` trimmed and parsed like Rust's f64::from_str; NaN when it does not parse or is NaN.
 * Grammar: [+-]? ( inf | infinity | nan | (digits [. digits?] | . digits) ([eE] [+-]? digits)? ).
 * The result is correctly rounded (round half to even), like Rust's and JavaScript's
 * parsers, whatever the number of digits (AssemblyScript's own parseFloat is not).
 */
export function parseF64(s: string): f64 {
  let t = trimWhitespace(s);
  let n = t.length;
  let i = 0;
  let negative = false;
  if (i < n) {
    let c = t.charCodeAt(0);
    if (c == 0x2B || c == 0x2D) { negative = c == 0x2D; i++; }
  }
  if (restIs(t, i, "inf") || restIs(t, i, "infinity")) return negative ? -Infinity : Infinity;
  // Significant digits (leading zeros dropped) and the decimal exponent of the last one.
  let digits = new Array<u8>();
  let exp10: i64 = 0;
  let intDigits = 0;
  while (i < n && isDigit(t.charCodeAt(i))) {
    let d = <u8>(t.charCodeAt(i) - 0x30);
    if (d != 0 || digits.length > 0) digits.push(d);
    i++; intDigits++;
  }
  let fracDigits = 0;
  if (i < n && t.charCodeAt(i) == 0x2E) {
    i++;
    while (i < n && isDigit(t.charCodeAt(i))) {
      let d = <u8>(t.charCodeAt(i) - 0x30);
      if (d != 0 || digits.length > 0) digits.push(d);
      else exp10--; // a leading zero after the point
      if (digits.length > 0) exp10--;
      i++; fracDigits++;
    }
  }
  if (intDigits + fracDigits == 0) return NaN;
  if (i < n) {
    let c = t.charCodeAt(i);
    if (c != 0x65 && c != 0x45) return NaN;
    i++;
    let expNegative = false;
    if (i < n) {
      let d = t.charCodeAt(i);
      if (d == 0x2B || d == 0x2D) { expNegative = d == 0x2D; i++; }
    }
    let expDigits = 0;
    let e: i64 = 0;
    while (i < n && isDigit(t.charCodeAt(i))) {
      if (e < 100000000) e = e * 10 + <i64>(t.charCodeAt(i) - 0x30); // saturates far beyond any f64
      i++; expDigits++;
    }
    if (expDigits == 0 || i != n) return NaN;
    exp10 += expNegative ? -e : e;
  }
  let x = decimalToF64(digits, exp10);
  return negative ? -x : x;
}

/** More significant digits than this never change the rounding of a double (max. 767 are needed). */
// @ts-ignore: decorator
@inline const MAX_DIGITS = 800;

/** The double nearest to digits × 10^exp10 (digits without leading zeros), ties to even. */
function decimalToF64(digits: Array<u8>, exp10: i64): f64 {
  // Trailing zeros only scale.
  while (digits.length > 0 && digits[digits.length - 1] == 0) { digits.pop(); exp10++; }
  let nd = digits.length;
  if (nd == 0) return 0;
  if (nd > MAX_DIGITS) {
    // Keep MAX_DIGITS digits; a non-zero tail becomes one extra non-zero digit, which puts
    // the value strictly between the same two neighbours of a rounding boundary.
    let tail = false;
    for (let k = MAX_DIGITS; k < nd; k++) if (digits[k] != 0) { tail = true; break; }
    exp10 += nd - MAX_DIGITS;
    digits.length = MAX_DIGITS;
    if (tail) { digits.push(1); exp10--; }
    nd = digits.length;
  }
  let lead = <i64>nd + exp10; // 10^(lead-1) <= value < 10^lead
  if (lead > 310) return Infinity;
  if (lead < -326) return 0;
  // Clinger's fast path: an exact integer below 2^53 and an exact power of ten, one rounding.
  if (nd <= 15 && exp10 >= -22 && exp10 <= 22) {
    // 10^0 .. 10^22, the powers of ten that are exact doubles (static data).
    let pow10 = memory.data<f64>([1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]);
    let m: f64 = 0;
    for (let k = 0; k < nd; k++) m = m * 10 + <f64>digits[k];
    let p = load<f64>(pow10 + ((<usize>(exp10 >= 0 ? exp10 : -exp10)) << 3));
    return exp10 >= 0 ? m * p : m / p;
  }
  // Exact: value = num / den with big integers; Q = floor(num * 2^k / den) gets 57-58 bits.
  let num = Big.fromDigits(digits);
  let den = Big.one();
  if (exp10 >= 0) num.mulPow10(<i32>exp10);
  else den.mulPow10(<i32>-exp10);
  let k = 57 - (num.bitLength() - den.bitLength());
  if (k >= 0) num.shl(k);
  else den.shl(-k);
  // Restoring division, one quotient bit at a time (Q < 2^58).
  let dd = den.copy();
  dd.shl(59);
  let q: u64 = 0;
  for (let bit = 58; bit >= 0; bit--) {
    dd.shr1();
    if (num.cmp(dd) >= 0) {
      num.sub(dd);
      q |= (<u64>1) << bit;
    }
  }
  let sticky = !num.isZero();
  // value = q * 2^-k (+ sticky); its binary exponent e2: 2^e2 <= value < 2^(e2+1).
  let L = 64 - <i32>clz<u64>(q);
  let e2 = L - 1 - k;
  if (e2 > 1023) return Infinity;
  let keep = e2 >= -1022 ? 53 : e2 + 1075; // subnormals keep fewer bits
  if (keep < 0) return 0;
  let drop = L - keep;
  let m = q >> <u64>drop;
  let rem = q & (((<u64>1) << <u64>drop) - 1);
  let half = (<u64>1) << <u64>(drop - 1);
  if (rem > half || (rem == half && (sticky || (m & 1) != 0))) m++;
  // m <= 2^53 is exact, and so is the scaling (the result is representable or overflows).
  // @ts-ignore: NativeMath.scalbn, missing from the editor typings
  return Math.scalbn(<f64>m, drop - k);
}

/** A minimal arbitrary-precision natural number (little-endian 32-bit limbs) for decimalToF64. */
class Big {
  limbs: u32[] = [];

  static one(): Big {
    let b = new Big();
    b.limbs.push(1);
    return b;
  }

  static fromDigits(digits: Array<u8>): Big {
    let b = new Big();
    let chunk: u32 = 0;
    let scale: u32 = 1;
    for (let k = 0, n = digits.length; k < n; k++) {
      chunk = chunk * 10 + <u32>digits[k];
      scale *= 10;
      if (scale == 1000000000) { b.mulAdd(scale, chunk); chunk = 0; scale = 1; }
    }
    if (scale > 1) b.mulAdd(scale, chunk);
    return b;
  }

  copy(): Big {
    let b = new Big();
    b.limbs = this.limbs.slice(0);
    return b;
  }

  /** this = this * f + a */
  mulAdd(f: u32, a: u32): void {
    let carry: u64 = a;
    let l = this.limbs;
    for (let k = 0, n = l.length; k < n; k++) {
      let v = <u64>l[k] * f + carry;
      l[k] = <u32>v;
      carry = v >> 32;
    }
    if (carry != 0) l.push(<u32>carry);
  }

  mulPow10(e: i32): void {
    while (e >= 9) { this.mulAdd(1000000000, 0); e -= 9; }
    let p: u32 = 1;
    while (e > 0) { p *= 10; e--; }
    if (p > 1) this.mulAdd(p, 0);
  }

  bitLength(): i32 {
    let l = this.limbs;
    let n = l.length;
    while (n > 0 && l[n - 1] == 0) n--;
    if (n == 0) return 0;
    return (n - 1) * 32 + (32 - <i32>clz<u32>(l[n - 1]));
  }

  shl(bits: i32): void {
    let words = bits >> 5;
    let r = bits & 31;
    let l = this.limbs;
    let n = l.length;
    let out = new Array<u32>(n + words + 1);
    for (let k = 0; k < n; k++) {
      let v = <u64>l[k] << <u64>r;
      out[k + words] |= <u32>v;
      out[k + words + 1] |= <u32>(v >> 32);
    }
    this.limbs = out;
  }

  shr1(): void {
    let l = this.limbs;
    let n = l.length;
    for (let k = 0; k < n; k++) {
      let hi: u32 = k + 1 < n ? l[k + 1] & 1 : 0;
      l[k] = (l[k] >>> 1) | (hi << 31);
    }
  }

  cmp(o: Big): i32 {
    let a = this.limbs;
    let b = o.limbs;
    let n = max(a.length, b.length);
    for (let k = n - 1; k >= 0; k--) {
      let x: u32 = k < a.length ? a[k] : 0;
      let y: u32 = k < b.length ? b[k] : 0;
      if (x != y) return x > y ? 1 : -1;
    }
    return 0;
  }

  /** this -= o (this >= o). */
  sub(o: Big): void {
    let a = this.limbs;
    let b = o.limbs;
    let borrow: i64 = 0;
    for (let k = 0, n = a.length; k < n; k++) {
      let v = <i64>a[k] - (k < b.length ? <i64>b[k] : 0) - borrow;
      borrow = v < 0 ? 1 : 0;
      a[k] = <u32>(v + (borrow << 32));
    }
  }

  isZero(): bool {
    let l = this.limbs;
    for (let k = 0, n = l.length; k < n; k++) if (l[k] != 0) return false;
    return true;
  }
}

/** True when `s` trimmed parses as u64 (Rust's u64::from_str: [+]? digits, no overflow). */
export function isU64(s: string): bool {
  let t = trimWhitespace(s);
  let n = t.length;
  let i = 0;
  if (i < n && t.charCodeAt(0) == 0x2B) i++;
  if (i == n) return false;
  let v: u64 = 0;
  for (; i < n; i++) {
    let c = t.charCodeAt(i);
    if (!isDigit(c)) return false;
    let d = <u64>(c - 0x30);
    if (v > (u64.MAX_VALUE - d) / 10) return false;
    v = v * 10 + d;
  }
  return true;
}

/** `s` trimmed and parsed as u64, or `fallback` when it is not one (see isU64). */
export function parseU64(s: string, fallback: u64 = 0): u64 {
  let t = trimWhitespace(s);
  let n = t.length;
  let i = 0;
  if (i < n && t.charCodeAt(0) == 0x2B) i++;
  if (i == n) return fallback;
  let v: u64 = 0;
  for (; i < n; i++) {
    let c = t.charCodeAt(i);
    if (!isDigit(c)) return fallback;
    let d = <u64>(c - 0x30);
    if (v > (u64.MAX_VALUE - d) / 10) return fallback;
    v = v * 10 + d;
  }
  return v;
}
