/**
 * A group of real trainer processes for one target: the server under test and
 * its honest peers, with their scratch folder. Finishing waits for the honest
 * peers' `done` (no output from any process for the hang deadline: failed),
 * then stops every process and removes the folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Group, HonestResult } from './harness';
import type { RoleProcess } from './role-process';

export interface GroupSpec {
  readonly server: RoleProcess;
  readonly ports: Readonly<Record<string, number>>;
  readonly token: string;
  readonly dir: string;
  /** Start the honest peers. */
  readonly honest: () => RoleProcess[];
  /** Resolves once the honest peers are in (e.g. the ring formed), so no hostile peer races them to a slot. @default - at once */
  readonly honestIn?: (server: RoleProcess, peers: readonly RoleProcess[]) => Promise<void>;
  /** Whether the server itself must report `done` for the run to count as finished. @default true */
  readonly serverDone?: boolean;
}

/** Scratch folders not yet removed: removed when this process exits, whatever the reason. */
const SCRATCH = new Set<string>();
let cleanupHook = false;

/** A scratch folder for one group. */
export function scratch(name: string): string {
  if (!cleanupHook) {
    cleanupHook = true;
    process.once('exit', () => SCRATCH.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  }
  const dir = mkdtempSync(join(tmpdir(), `tf-fuzz-${name}-`));
  SCRATCH.add(dir);
  return dir;
}

const PROGRESS_POLL_MS = 100;

export function roleGroup(spec: GroupSpec): Group {
  const peers: RoleProcess[] = [];
  let started = false;
  const processes: RoleProcess[] = [spec.server];
  const everyone = (): RoleProcess[] => [spec.server, ...peers];
  return {
    server: spec.server,
    ports: spec.ports,
    token: spec.token,
    processes,
    get honestStarted() {
      return started;
    },
    startHonest: async () => {
      if (started) return;
      started = true;
      peers.push(...spec.honest());
      processes.push(...peers);
      await spec.honestIn?.(spec.server, peers);
    },
    finish: async (hangMs) => {
      const serverDone = spec.serverDone ?? true;
      const ended = (): boolean =>
        spec.server.crashed ||
        (peers.every((p) => p.hasEvent('done') || !p.alive) && (!serverDone || spec.server.hasEvent('done') || !spec.server.alive));
      while (started && hangMs > 0 && !ended()) {
        const quietMs = Date.now() - Math.max(...everyone().map((p) => p.lastOutputMs));
        if (quietMs > hangMs) break;
        await new Promise((r) => setTimeout(r, PROGRESS_POLL_MS));
      }
      const failed = (p: RoleProcess): boolean => !p.hasEvent('done') || p.crashed;
      const result: HonestResult = !started ? 'n/a' : peers.some(failed) || (serverDone && failed(spec.server)) ? 'failed' : 'finished';
      const detail = everyone()
        .filter(failed)
        .map((p) => `${p.label} ${p.alive ? 'still running without done' : `exited ${p.exit?.code}`}\n${p.tail(3)}`)
        .join('\n');
      await Promise.all(everyone().map((p) => p.stop()));
      rmSync(spec.dir, { recursive: true, force: true });
      SCRATCH.delete(spec.dir);
      return { honest: result, detail };
    },
  };
}
