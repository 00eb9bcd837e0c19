import { EdgelessError } from '../errors'
import type { DenseLayout } from './dense'

/**
 * Regions of shared chunks for dense instances (see dense.ts): each instance gets a region
 * of a big wasm memory (a chunk), handed out in order and never twice.
 *
 * Never twice: a region's pages are zero until its instance touches them, and touched pages
 * stay resident (JS cannot give them back to the OS). Reusing a region would mean zeroing
 * what the last instance touched, which we cannot tell from what it did not, so zeroing all
 * of it would make all of it resident. Instead a chunk is simply dropped when the pool moves
 * on to the next: the instances in it keep it alive (they import it), and when the last of
 * them is released the GC frees the whole chunk, pages and address space.
 *
 * Chunks are as big as a memory can be (4 GiB less a page), so a process needs few of them:
 * 100,000 instances of a Rust guest (16 MiB regions by default) take 393, 4 TiB of the 128 TiB
 * address space. They are shared memories where
 * the engine allows it (Node; browsers only when cross-origin isolated): V8 counts an
 * unshared memory as external memory and runs a full GC for every chunk (~0.1 s with 100,000
 * instances in the heap), while a shared one is not counted. Measured (100,000 instances of
 * a small module): unshared chunks ran at 15.7k/s falling to 4.5k/s, with 51 full GCs;
 * shared ones at 41-44k/s falling to 17k/s, with 2.
 * @internal
 */

/** Pages of a chunk: the largest memory V8 gives (65,536 pages is one too many for some). */
const CHUNK_PAGES = 65535

/** Where one instance lives: the chunk it imports and the first byte of its region. */
export interface Region {
  readonly memory: WebAssembly.Memory
  readonly base: number
}

class RegionPool {
  private chunk: WebAssembly.Memory | null = null
  private next = 0
  private perChunk = 0
  private pages = CHUNK_PAGES

  constructor(
    private readonly stride: number,
    private readonly shared: boolean,
  ) {}

  take(): Region {
    if (this.chunk === null || this.next === this.perChunk) this.newChunk()
    const base = this.next * this.stride
    this.next++
    return { memory: this.chunk!, base }
  }

  private newChunk(): void {
    // A smaller chunk when the engine refuses a 4 GiB one (a browser, a 32-bit process), as
    // long as it still holds a region.
    for (;;) {
      try {
        this.chunk = new WebAssembly.Memory(
          this.shared ? { initial: this.pages, maximum: this.pages, shared: true } : { initial: this.pages, maximum: this.pages },
        )
        break
      } catch (e) {
        const smaller = this.pages >> 1
        if (smaller * 65536 < this.stride) {
          throw new EdgelessError(
            'resource-failed',
            `Could not allocate a memory chunk for dense instances (${(e as Error).message}); even ${this.pages} pages failed. The process is out of memory or address space; spawn fewer instances or without \`dense\`.`,
            { pages: this.pages },
            { cause: e },
          )
        }
        this.pages = smaller
      }
    }
    this.next = 0
    this.perChunk = Math.floor((this.pages * 65536) / this.stride)
  }
}

/** One pool per region size and sharing, for the whole process (like the module cache). */
const pools = new Map<string, RegionPool>()

/** A fresh region for an instance of a module laid out as `layout`. */
export function takeRegion(layout: DenseLayout): Region {
  const key = `${layout.strideBytes}:${layout.shared}`
  let pool = pools.get(key)
  if (!pool) pools.set(key, (pool = new RegionPool(layout.strideBytes, layout.shared)))
  return pool.take()
}

let sharable: boolean | undefined

/**
 * Can this engine make shared wasm memories? Node can; a browser only when cross-origin
 * isolated. Decides how a dense module imports its memory, so it is asked once.
 */
export function canShareMemory(): boolean {
  if (sharable === undefined) {
    try {
      // (By tag, not instanceof: the memory may come from another realm's WebAssembly.)
      sharable = Object.prototype.toString.call(new WebAssembly.Memory({ initial: 0, maximum: 1, shared: true }).buffer) === '[object SharedArrayBuffer]'
    } catch {
      sharable = false
    }
  }
  return sharable
}
