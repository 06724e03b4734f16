// The memory panel's time series: the last hour or so of memory reports, oldest first. No vscode import.

import type { MemoryReport } from '../engine/model';
import type { MemorySample } from '../webview/protocol';

export function sampleOf(r: MemoryReport, tokens: number, at = Date.now()): MemorySample {
  return {
    at,
    weights: r.weightsBytes,
    state: r.stateBytes,
    kvGpu: r.kvGpuBytes,
    kvHost: r.kvHostBytes,
    kvDisk: r.kvDiskBytes,
    scratch: r.scratchBytes,
    tokens,
  };
}

export class MemoryHistory {
  private readonly ring: MemorySample[] = [];
  private start = 0;

  constructor(readonly capacity = 1800) {}

  push(s: MemorySample): void {
    if (this.ring.length < this.capacity) this.ring.push(s);
    else {
      this.ring[this.start] = s;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** Every sample, oldest first. */
  all(): MemorySample[] {
    return [...this.ring.slice(this.start), ...this.ring.slice(0, this.start)];
  }

  latest(): MemorySample | null {
    if (!this.ring.length) return null;
    return this.ring[(this.start + this.ring.length - 1) % this.ring.length];
  }
}
