/** A benchmark the CLI can run as `tensorfleet bench <name> [flags]`. */
export interface BenchOption {
  readonly type: 'string' | 'boolean';
  readonly description: string;
  /** Shown in --help; the bench applies its own default when the flag is absent. */
  readonly default?: string;
}

export interface BenchDefinition {
  readonly name: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, BenchOption>>;
  /** Runs the bench and prints its table (or JSON lines). Throws on failure. */
  run(values: Readonly<Record<string, string | boolean | undefined>>): Promise<void>;
}
