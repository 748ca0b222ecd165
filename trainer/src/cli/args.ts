import { parseArgs } from 'node:util';

/** A usage mistake: the CLI prints it with the valid choices and exits 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly description: string;
  readonly default?: string;
  /** A one-letter alias (`-o` for `--out`). */
  readonly short?: string;
}

export interface ParsedCommandLine {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
  readonly help: boolean;
}

/** One `tensorfleet <command>`. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** More help after the flags (`bench`: every benchmark and its flags). @default - none */
  readonly moreHelp?: () => string;
  run(parsed: ParsedCommandLine, rest: readonly string[]): Promise<number>;
}

export const out = (line: string): void => void process.stdout.write(`${line}\n`);
export const err = (line: string): void => void process.stderr.write(`${line}\n`);

/** Parse flags strictly: an unknown flag names itself and lists the valid ones. */
export function parseFlags(command: string, argv: readonly string[], flags: Readonly<Record<string, FlagSpec>>): ParsedCommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(flags)) options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}) };
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true });
    const { help, ...rest } = values as Record<string, string | boolean | undefined>;
    // An empty value would silently mean the default (the env contract reads '' as unset) or, for a path, the
    // working directory (`--out ''` would clear ./checkpoints): refused for every flag.
    const empty = Object.keys(rest).filter((name) => typeof rest[name] === 'string' && rest[name].trim() === '');
    if (empty.length > 0) {
      const given = empty.map((f) => `--${f} ${JSON.stringify(rest[f])}`).join(', ');
      throw new UsageError(`${command}: ${given}: must not be empty (leave the flag out for its default)`);
    }
    return { values: rest, positionals, help: help === true };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const valid = ['--help', ...Object.keys(flags).map((f) => `--${f}`)].join(', ');
    const what = (err as Error).message.split('\n')[0].replace(/\. To specify a positional.*$/, '');
    throw new UsageError(`${command}: ${what}; valid flags: ${valid}`);
  }
}

/**
 * `--epochs -1` as `--epochs=-1`: node's parseArgs takes a value starting with '-' for a flag ("ambiguous"), so a
 * negative number would never reach the check that names the flag and what it allows.
 */
function joinNegativeValues(argv: readonly string[], options: Readonly<Record<string, { type: 'string' | 'boolean' }>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = /^--([^=]+)$/.exec(argv[i]);
    if (flag && options[flag[1]]?.type === 'string' && /^-(\d|\.\d|Infinity$)/.test(argv[i + 1] ?? '')) {
      out.push(`${argv[i]}=${argv[i + 1]}`);
      i++;
    } else out.push(argv[i]);
  }
  return out;
}

/** `--name` parsed as an integer within bounds, or a UsageError naming flag, value and range. */
export function intFlag(
  command: string,
  values: Readonly<Record<string, string | boolean | undefined>>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${command}: --${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** The gap a help table always leaves between its name column and the text, however long a name is. */
export const HELP_GAP = 2;

/**
 * Rows of `[name, text]` as a two-column table indented by `indent`: the text column starts at `minWidth`, or further
 * right when a name is longer, so that a name and its text are always at least {@link HELP_GAP} spaces apart.
 */
export function helpTable(rows: readonly (readonly [string, string])[], indent: string, minWidth: number): string {
  const width = Math.max(minWidth, ...rows.map(([name]) => indent.length + name.length + HELP_GAP));
  return rows.map(([name, text]) => `${indent}${name}`.padEnd(width) + text).join('\n');
}

/** The flags' help table (each with its short form, `<value>` when it takes one, and its default), then `--help`. */
export function formatFlags(flags: Readonly<Record<string, FlagSpec>>, indent = '  '): string {
  const rows = Object.entries(flags).map(([name, spec]): [string, string] => {
    const short = spec.short !== undefined ? `-${spec.short}, ` : '';
    const arg = spec.type === 'string' ? ` <value>` : '';
    const def = spec.default !== undefined ? ` (default ${spec.default})` : '';
    return [`${short}--${name}${arg}`, `${spec.description}${def}`];
  });
  return helpTable([...rows, ['--help', 'show this help']], indent, indent.length + 26);
}
