/**
 * The dead-letter ratio breaker: when more than `ratio` of a tenant's last `window` processed
 * events were dead-lettered by the pipeline (poison, a row the store refuses, an enricher
 * failing), the tenant is held instead of dead-lettering everything — the signature of a
 * bad deploy. Producer mistakes (schema violations, lateness) do not count: the producer is
 * told of those at ingest, and they must not hold the tenant's good events.
 *
 * Per tenant, a ring of the last `window` outcomes. Pure: the caller decides what tripping
 * does (pause the tenant in the catalog) and resets it on resume.
 */
export interface BreakerOptions {
  ratio: number;
  window: number;
  minEvents: number;
}

interface Ring {
  outcomes: Uint8Array;
  next: number;
  seen: number;
  failed: number;
}

export class DeadLetterBreaker {
  private readonly rings = new Map<string, Ring>();

  constructor(private readonly opts: BreakerOptions) {}

  /**
   * Records `ok` successes and `failed` failures of a tenant; returns the failure ratio when
   * this trips the breaker, else null. A tripped tenant's ring starts again empty.
   */
  record(tenant: string, ok: number, failed: number): number | null {
    let ring = this.rings.get(tenant);
    if (!ring) {
      ring = { outcomes: new Uint8Array(this.opts.window), next: 0, seen: 0, failed: 0 };
      this.rings.set(tenant, ring);
    }
    // Failures last, so that a batch's failures weigh on the window's end.
    for (let i = 0; i < ok + failed; i++) {
      const v = i >= ok ? 1 : 0;
      if (ring.seen >= this.opts.window) ring.failed -= ring.outcomes[ring.next]!;
      else ring.seen++;
      ring.outcomes[ring.next] = v;
      ring.failed += v;
      ring.next = (ring.next + 1) % this.opts.window;
    }
    if (ring.seen < this.opts.minEvents) return null;
    const ratio = ring.failed / ring.seen;
    if (ratio <= this.opts.ratio) return null;
    this.rings.delete(tenant);
    return ratio;
  }

  reset(tenant: string): void {
    this.rings.delete(tenant);
  }
}
