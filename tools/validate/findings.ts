/**
 * Findings: the one output type of every validator pass, the catalogue of rule ids, and the
 * helpers that build, format and count findings. Imports nothing from the other passes.
 */

/**
 * Every rule the validator can report, grouped by pass. The prefix before `/` names the pass:
 * `schema` (Kubernetes OpenAPI), `crd` (custom resource schemas), `service`/`ref`/`name`/
 * `statefulset`/`object` (cross-object semantics) and `security` (pod security baseline).
 */
export const RULES = {
  // (a) Kubernetes 1.27 OpenAPI definitions
  SCHEMA_NOT_AN_OBJECT: 'schema/not-an-object',
  SCHEMA_UNKNOWN_KIND: 'schema/unknown-kind',
  SCHEMA_UNKNOWN_FIELD: 'schema/unknown-field',
  SCHEMA_REQUIRED: 'schema/required',
  SCHEMA_TYPE: 'schema/type',
  SCHEMA_FORMAT: 'schema/format',
  SCHEMA_QUANTITY: 'schema/quantity',
  SCHEMA_INT_OR_STRING: 'schema/int-or-string',
  SCHEMA_ENUM: 'schema/enum',
  // (b) custom resources against their CRD's openAPIV3Schema
  CRD_UNKNOWN_FIELD: 'crd/unknown-field',
  CRD_REQUIRED: 'crd/required',
  CRD_TYPE: 'crd/type',
  CRD_INT_OR_STRING: 'crd/int-or-string',
  CRD_ENUM: 'crd/enum',
  CRD_PATTERN: 'crd/pattern',
  CRD_RANGE: 'crd/range',
  CRD_LENGTH: 'crd/length',
  CRD_ITEMS: 'crd/items',
  CRD_ANY_OF: 'crd/any-of',
  // (c) semantics across the objects of one chart file
  SERVICE_SELECTS_NOTHING: 'service/selects-nothing',
  SERVICE_TARGET_PORT: 'service/target-port',
  REF_MISSING: 'ref/missing',
  REF_EXTERNAL_REFS_SYNTAX: 'ref/external-refs-syntax',
  REF_VOLUME_MOUNT: 'ref/volume-mount',
  NAME_MISSING: 'name/missing',
  NAME_DNS_SUBDOMAIN: 'name/dns-subdomain',
  NAME_DNS_LABEL: 'name/dns-label',
  NAME_IANA_SVC_NAME: 'name/iana-svc-name',
  STATEFULSET_SERVICE_NAME: 'statefulset/service-name',
  OBJECT_DUPLICATE: 'object/duplicate',
  POLICY_TRAINER_UNISOLATED: 'network-policy/trainer-unisolated',
  POLICY_ALL_NAMESPACES: 'network-policy/all-namespaces',
  POLICY_UNRESTRICTED_PORTS: 'network-policy/unrestricted-ports',
  // (d) security baseline on every pod template
  SECURITY_RUN_AS_NON_ROOT: 'security/run-as-non-root',
  SECURITY_READ_ONLY_ROOT_FS: 'security/read-only-root-fs',
  SECURITY_PRIVILEGE_ESCALATION: 'security/privilege-escalation',
  SECURITY_CAPABILITIES: 'security/capabilities-drop-all',
  SECURITY_SECCOMP: 'security/seccomp-runtime-default',
  SECURITY_RESOURCES: 'security/resources',
  SECURITY_AUTOMOUNT_TOKEN: 'security/automount-token',
  SECURITY_IMAGE_PINNED: 'security/image-pinned',
  SECURITY_PRIVILEGED: 'security/privileged',
  SECURITY_HOST_NAMESPACES: 'security/host-namespaces',
} as const;

export type RuleId = (typeof RULES)[keyof typeof RULES];

/** The pass a rule belongs to: the text before the `/` of its id. */
export type RulePass = 'schema' | 'crd' | 'semantics' | 'security';

export function passOf(rule: RuleId): RulePass {
  const prefix = rule.slice(0, rule.indexOf('/'));
  if (prefix === 'schema' || prefix === 'crd' || prefix === 'security') return prefix;
  return 'semantics';
}

/** One problem in one object of one manifest file. */
export interface Finding {
  /** Chart file (or any label the caller passed as `opts.file`), e.g. `ddp.k8s.yaml`. */
  readonly file: string;
  /** `kind` of the object, or `<unknown>` when it has none. */
  readonly kind: string;
  /** `metadata.name` of the object, or `<unnamed #i>` when it has none. */
  readonly name: string;
  /** Where in the object, e.g. `spec.template.spec.containers[0].image`; `''` for the whole object. */
  readonly path: string;
  readonly rule: RuleId;
  /** `<kind> <name>: <path>: <detail>`, readable on its own. */
  readonly message: string;
}

/** Identifies the object a finding is about. */
export interface ObjectLabel {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
}

/** Appends findings about one object to a list. */
export class Reporter {
  constructor(
    readonly label: ObjectLabel,
    private readonly out: Finding[],
  ) {}

  report(path: string, rule: RuleId, detail: string): void {
    this.out.push(makeFinding(this.label, path, rule, detail));
  }

  /** A reporter about the same object that writes to another list (for trial validation). */
  into(out: Finding[]): Reporter {
    return new Reporter(this.label, out);
  }
}

export function makeFinding(label: ObjectLabel, path: string, rule: RuleId, detail: string): Finding {
  const where = path === '' ? '' : `${path}: `;
  return { ...label, path, rule, message: `${label.kind} ${label.name}: ${where}${detail}` };
}

/** `file: message [rule]`, one line per finding. */
export function formatFinding(f: Finding): string {
  return `${f.file}: ${f.message} [${f.rule}]`;
}

/** Appends a property name to a path: `spec` + `replicas`, or `labels` + `["app.kubernetes.io/name"]`. */
export function childPath(path: string, key: string): string {
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** Appends an array index to a path: `containers` + `[0]`. */
export function indexPath(path: string, index: number): string {
  return `${path}[${index}]`;
}

export interface ValidationSummary {
  readonly objects: number;
  readonly findings: number;
  /** Finding count per rule id, only rules with at least one finding, sorted by id. */
  readonly byRule: Readonly<Record<string, number>>;
  /** Finding count per file, sorted by file. */
  readonly byFile: Readonly<Record<string, number>>;
}

/** Counts objects and findings per rule and per file. */
export function summarize(objectCount: number, findings: readonly Finding[]): ValidationSummary {
  const byRule = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const f of findings) {
    byRule.set(f.rule, (byRule.get(f.rule) ?? 0) + 1);
    byFile.set(f.file, (byFile.get(f.file) ?? 0) + 1);
  }
  const sorted = (m: Map<string, number>): Record<string, number> =>
    Object.fromEntries([...m.entries()].sort(([a], [b]) => a.localeCompare(b)));
  return { objects: objectCount, findings: findings.length, byRule: sorted(byRule), byFile: sorted(byFile) };
}

/** `3 objects, 2 findings (security/resources: 1, ref/missing: 1)`. */
export function formatSummary(s: ValidationSummary): string {
  const rules = Object.entries(s.byRule).map(([rule, n]) => `${rule}: ${n}`);
  const tail = rules.length === 0 ? '' : ` (${rules.join(', ')})`;
  return `${s.objects} object${s.objects === 1 ? '' : 's'}, ${s.findings} finding${s.findings === 1 ? '' : 's'}${tail}`;
}
