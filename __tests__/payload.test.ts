import { encodeUtf8, utf8 } from '../lib/index'
import { utf8Strict } from '../lib/payload'

test('encodeUtf8 matches TextEncoder on ASCII, non-ASCII, long and empty strings', () => {
  const te = new TextEncoder()
  for (const s of ['', 'wakeup', 'PING-42', 'héllo', '🦀', 'x'.repeat(31), 'y'.repeat(33), 'a'.repeat(32) + 'é', '\u007f\u0080']) {
    expect([...encodeUtf8(s)]).toEqual([...te.encode(s)])
    expect(utf8(encodeUtf8(s))).toBe(s)
  }
})

test('utf8Strict rejects invalid UTF-8 on both the ASCII fast path and the decoder path', () => {
  expect(utf8Strict(new Uint8Array([0x6f, 0x75, 0x74]))).toBe('out')
  expect(utf8Strict(new Uint8Array([0x6f, 0xff]))).toBeUndefined()
  expect(utf8Strict(new Uint8Array([0xc3, 0xa9]))).toBe('é')
  expect(utf8Strict(new Uint8Array(100).fill(0xff))).toBeUndefined()
  expect(utf8Strict(new Uint8Array([0x61, 0x62, 0x63, 0x64]), 1, 3)).toBe('bc')
})
