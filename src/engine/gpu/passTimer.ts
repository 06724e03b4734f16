// GPU time of compute passes, by label, from timestamp queries (the adapter's 'timestamp-query' feature). For
// benchmarks: it says how much of a wall-clock interval the GPU was busy, and with what. Passes on one queue run
// one after the other, so the sum of their durations is the GPU's busy time.

/** At most this many passes are timed between two flushes (a query set holds at most 4,096 queries). */
const PASSES = 2048;

export interface PassTimes {
  /** Seconds of GPU time by pass label, and how many passes. */
  byLabel: Record<string, { seconds: number; passes: number }>;
  busySeconds: number;
  /** Passes begun while the query set was full (not timed). */
  untimedPasses: number;
}

export class PassTimer {
  private readonly set: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private readonly staging: GPUBuffer;
  private labels: string[] = [];
  private readonly times: PassTimes = { byLabel: {}, busySeconds: 0, untimedPasses: 0 };

  constructor(private readonly device: GPUDevice) {
    this.set = device.createQuerySet({ type: 'timestamp', count: 2 * PASSES });
    this.resolved = device.createBuffer({ size: 16 * PASSES, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'timer.resolved' });
    this.staging = device.createBuffer({ size: 16 * PASSES, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'timer.staging' });
  }

  /** The descriptor for a pass labelled `label`: timestamps at its start and end while there is room. */
  pass(label: string): GPUComputePassDescriptor {
    const i = this.labels.length;
    if (i >= PASSES) {
      this.times.untimedPasses++;
      return {};
    }
    this.labels.push(label);
    return { timestampWrites: { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** True when the next flush should not wait much longer (most of the query set is used). */
  get nearlyFull(): boolean {
    return this.labels.length >= PASSES - 64;
  }

  /** Waits for the timed passes, adds their durations to the totals and frees the query set. */
  async flush(): Promise<void> {
    const n = this.labels.length;
    if (n === 0) return;
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(this.set, 0, 2 * n, this.resolved, 0);
    enc.copyBufferToBuffer(this.resolved, 0, this.staging, 0, 16 * n);
    this.device.queue.submit([enc.finish()]);
    await this.staging.mapAsync(GPUMapMode.READ, 0, 16 * n);
    const ts = new BigUint64Array(this.staging.getMappedRange(0, 16 * n).slice(0));
    this.staging.unmap();
    for (let i = 0; i < n; i++) {
      // An implementation may report 0 or a reversed pair for a pass it could not time: counted as 0.
      const s = ts[2 * i + 1] > ts[2 * i] ? Number(ts[2 * i + 1] - ts[2 * i]) / 1e9 : 0;
      const e = (this.times.byLabel[this.labels[i]] ??= { seconds: 0, passes: 0 });
      e.seconds += s;
      e.passes++;
      this.times.busySeconds += s;
    }
    this.labels = [];
  }

  /** Totals so far (call flush() first to include the latest passes). */
  report(): PassTimes {
    const byLabel = Object.fromEntries(Object.entries(this.times.byLabel).map(([k, v]) => [k, { seconds: +v.seconds.toFixed(3), passes: v.passes }]));
    return { byLabel, busySeconds: +this.times.busySeconds.toFixed(3), untimedPasses: this.times.untimedPasses };
  }

  destroy(): void {
    this.set.destroy();
    this.resolved.destroy();
    this.staging.destroy();
  }
}
