/** A counting semaphore: at most `limit` holders at once, waiters served in order. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private idlers: (() => void)[] = [];

  constructor(private limit: number) {}

  get inflight(): number {
    return this.active;
  }

  get capacity(): number {
    return this.limit;
  }

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) return next();
    this.active--;
    if (this.active === 0) {
      const idlers = this.idlers;
      this.idlers = [];
      for (const resolve of idlers) resolve();
    }
  }

  /** Resolves when no holder is left. */
  async idle(): Promise<void> {
    if (this.active > 0) await new Promise<void>((resolve) => this.idlers.push(resolve));
  }
}
