/**
 * Who is connected to a star, as its callers wait on it: membership changes
 * are reported (onMembership) and wake every {@link Membership.waitFor}. The
 * Hub and the in-memory star keep the clients; this keeps the waits.
 */
import { TrainerError } from '../../contract/errors';
import type { MembershipChange } from './protocol';

/** What a wait reads of its star. */
export interface MembershipSource {
  /** Ids of the clients connected now, sorted. */
  clientIds(): string[];
  /** True once the star closed or was terminated. */
  closed(): boolean;
  /** The star in a timeout message ("federated server on port 8080"). */
  describe(): string;
}

export class Membership {
  private readonly checks = new Set<() => void>();

  constructor(
    private readonly source: MembershipSource,
    private readonly onMembership: ((change: MembershipChange) => void) | undefined,
  ) {}

  /** Report a change and wake the waits. */
  changed(change: MembershipChange): void {
    this.onMembership?.(change);
    this.wake();
  }

  /** Wake the waits (the star closed). */
  wake(): void {
    for (const check of [...this.checks]) check();
  }

  /**
   * Resolve with the connected ids once at least `count` are connected; reject
   * with TRAINER_ERR_CONNECT_TIMEOUT after `timeoutMs`, naming who is there, or
   * TRAINER_ERR_CLOSED when the star closes first.
   */
  waitFor(count: number, timeoutMs: number): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      const check = (): void => {
        if (this.source.closed()) {
          finish();
          reject(new TrainerError('TRAINER_ERR_CLOSED', `hub closed while waiting for ${count} client(s)`));
        } else if (this.source.clientIds().length >= count) {
          finish();
          resolve(this.source.clientIds());
        }
      };
      const timer = setTimeout(() => {
        finish();
        const have = this.source.clientIds();
        reject(
          new TrainerError(
            'TRAINER_ERR_CONNECT_TIMEOUT',
            `${this.source.describe()} timed out after ${timeoutMs}ms waiting for ${count} client(s) to connect; ` +
              `${have.length} connected${have.length > 0 ? ` (${have.join(', ')})` : ''}`,
          ),
        );
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.checks.delete(check);
      };
      this.checks.add(check);
      check();
    });
  }
}
