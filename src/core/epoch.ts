/**
 * Follows a catalog's epoch (a number that moves with every change of tenants, schemas,
 * settings or pipelines) at most every `refreshMs`, for the caches that live beside it: when
 * the epoch moved, `onChange` drops what they hold.
 *
 * While the catalog cannot be read (a PostgreSQL restart), what was read at the last epoch is
 * still the best answer: `check` goes on with it and asks again after `refreshMs`. Before a
 * first epoch there is nothing to go on with, and `check` throws the catalog's error.
 */
export class EpochWatch {
  private epoch = -1;
  private checkedAt = -Infinity;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly read: () => Promise<number>,
    private readonly opts: { refreshMs: number; now?: () => number },
    private readonly onChange: () => void,
  ) {}

  /** The next `check` asks the catalog again. */
  expire(): void {
    this.checkedAt = -Infinity;
  }

  /** Asks for the epoch when `refreshMs` has passed since the last answer; calls `onChange` when it moved. */
  async check(): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.checkedAt < this.opts.refreshMs) return;
    this.checking ??= (async () => {
      try {
        const epoch = await this.read();
        if (epoch !== this.epoch) {
          this.onChange();
          this.epoch = epoch;
        }
        this.checkedAt = now;
      } catch (e: unknown) {
        if (this.epoch === -1) throw e;
        this.checkedAt = now;
      } finally {
        this.checking = null;
      }
    })();
    await this.checking;
  }
}
