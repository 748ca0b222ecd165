/**
 * (a) Validation of built-in Kubernetes objects against the 1.27 OpenAPI v2 definitions, with the
 * strictness of `kubectl apply --validate=strict`: types, required fields, enums, quantities,
 * int-or-string and unknown fields.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_DIR } from '../test-support/paths';
import { childPath, indexPath, Reporter, RULES } from './findings';
import { isBase64, isDateTime, isQuantity } from './formats';
import { describeValue, isObject, JsonObject, matchesType } from './json-value';
import { KNOWN_ENUMS } from './k8s-enums';

/** The subset of an OpenAPI v2 / v3 schema object the validators read. */
export interface OpenApiSchema {
  readonly $ref?: string;
  readonly type?: string;
  readonly format?: string;
  readonly properties?: Readonly<Record<string, OpenApiSchema>>;
  readonly additionalProperties?: OpenApiSchema | boolean;
  readonly items?: OpenApiSchema;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly 'x-kubernetes-preserve-unknown-fields'?: boolean;
  readonly 'x-kubernetes-int-or-string'?: boolean;
  readonly 'x-kubernetes-group-version-kind'?: readonly GroupVersionKind[];
}

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** Parsed definitions plus the indexes built from them. */
export interface K8sDefinitions {
  readonly definitions: Readonly<Record<string, OpenApiSchema>>;
  /** `group/version/kind` (group `''` for core) to definition name. */
  readonly byGvk: ReadonlyMap<string, string>;
  /** Every API group that has at least one definition, `''` for core. */
  readonly groups: ReadonlySet<string>;
}

export const DEFAULT_DEFINITIONS_PATH = join(SHARED_DIR, 'k8s-schemas', 'v1.27.0', '_definitions.json');

export const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
/** Definitions that hold arbitrary JSON; nothing under them is checked. */
const FREE_FORM = new Set([
  'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1',
  'io.k8s.apimachinery.pkg.apis.meta.v1.Patch',
  'io.k8s.apimachinery.pkg.runtime.RawExtension',
  'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON',
  'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray',
  'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool',
  'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray',
]);
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const definitionsCache = new Map<string, K8sDefinitions>();

/** Reads and indexes the definitions file once per process (per path). */
export function loadK8sDefinitions(path: string = DEFAULT_DEFINITIONS_PATH): K8sDefinitions {
  const cached = definitionsCache.get(path);
  if (cached !== undefined) return cached;
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { definitions?: Record<string, OpenApiSchema> };
  const definitions = parsed.definitions;
  if (!isObject(definitions)) throw new Error(`${path}: expected a top-level "definitions" object`);
  const byGvk = new Map<string, string>();
  const groups = new Set<string>();
  for (const [name, def] of Object.entries(definitions)) {
    for (const gvk of def['x-kubernetes-group-version-kind'] ?? []) {
      byGvk.set(gvkKey(gvk.group, gvk.version, gvk.kind), name);
      groups.add(gvk.group);
    }
  }
  const result: K8sDefinitions = { definitions, byGvk, groups };
  definitionsCache.set(path, result);
  return result;
}

export function gvkKey(group: string, version: string, kind: string): string {
  return `${group}/${version}/${kind}`;
}

/** Splits `apps/v1` into group `apps` and version `v1`; `v1` is the core group `''`. */
export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  if (slash < 0) return { group: '', version: apiVersion };
  return { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** Whether an API group is served by Kubernetes itself (so no CRD can define it). */
export function isBuiltinGroup(group: string, defs: K8sDefinitions = loadK8sDefinitions()): boolean {
  return defs.groups.has(group) || group.endsWith('.k8s.io');
}

/** Name of the definition for `apiVersion`/`kind`, or undefined when Kubernetes 1.27 has none. */
export function definitionNameFor(apiVersion: string, kind: string, defs: K8sDefinitions = loadK8sDefinitions()): string | undefined {
  const { group, version } = splitApiVersion(apiVersion);
  return defs.byGvk.get(gvkKey(group, version, kind));
}

/**
 * Checks `value` (found at `path`) against the named definition, following `$ref`s.
 * Used for whole objects and for the `metadata` of custom resources.
 */
export function validateAgainstDefinition(
  value: unknown,
  definitionName: string,
  path: string,
  reporter: Reporter,
  defs: K8sDefinitions = loadK8sDefinitions(),
): void {
  new K8sSchemaWalker(defs, reporter).checkDefinition(value, definitionName, path);
}

class K8sSchemaWalker {
  constructor(
    private readonly defs: K8sDefinitions,
    private readonly reporter: Reporter,
  ) {}

  checkDefinition(value: unknown, name: string, path: string): void {
    if (value === undefined || value === null || FREE_FORM.has(name)) return;
    if (name === INT_OR_STRING) return this.checkIntOrString(value, path);
    if (name === QUANTITY) return this.checkQuantity(value, path);
    const def = this.defs.definitions[name];
    if (def === undefined) return; // a dangling $ref is a schema bug, not an object bug
    this.check(value, def, path, name);
  }

  /** `definitionName` is set when `schema` is a top-level definition (for KNOWN_ENUMS lookups). */
  private check(value: unknown, schema: OpenApiSchema, path: string, definitionName?: string): void {
    if (value === undefined || value === null) return;
    if (schema.$ref !== undefined) return this.checkDefinition(value, refName(schema.$ref), path);
    if (schema.format === 'int-or-string' || schema['x-kubernetes-int-or-string'] === true) {
      return this.checkIntOrString(value, path);
    }
    const type = schema.type ?? (schema.properties !== undefined ? 'object' : undefined);
    if (type !== undefined && !matchesType(value, type)) {
      this.reporter.report(path, RULES.SCHEMA_TYPE, `expected ${type}, got ${describeValue(value)}`);
      return;
    }
    if (schema.enum !== undefined && !schema.enum.includes(value)) {
      this.reporter.report(path, RULES.SCHEMA_ENUM, unsupportedValue(value, schema.enum));
    }
    this.checkFormat(value, schema.format, path);
    if (Array.isArray(value)) {
      if (schema.items !== undefined) {
        for (let i = 0; i < value.length; i++) this.check(value[i], schema.items, indexPath(path, i));
      }
    } else if (isObject(value) && type === 'object') {
      this.checkObject(value, schema, path, definitionName);
    }
  }

  private checkObject(value: JsonObject, schema: OpenApiSchema, path: string, definitionName?: string): void {
    const properties = schema.properties ?? {};
    const additional = schema.additionalProperties;
    const preserveUnknown = schema['x-kubernetes-preserve-unknown-fields'] === true;
    for (const [key, child] of Object.entries(value)) {
      const keyPath = childPath(path, key);
      const propSchema = properties[key];
      if (propSchema !== undefined) {
        this.check(child, propSchema, keyPath);
        if (definitionName !== undefined) this.checkKnownEnum(child, `${definitionName}.${key}`, keyPath);
      } else if (isObject(additional)) {
        this.check(child, additional, keyPath);
      } else if (additional !== true && !preserveUnknown) {
        this.reporter.report(keyPath, RULES.SCHEMA_UNKNOWN_FIELD, unknownField(key, Object.keys(properties)));
      }
    }
    for (const key of schema.required ?? []) {
      if (value[key] === undefined || value[key] === null) {
        this.reporter.report(path, RULES.SCHEMA_REQUIRED, `missing required field "${key}"`);
      }
    }
  }

  private checkKnownEnum(value: unknown, key: string, path: string): void {
    const allowed = KNOWN_ENUMS.get(key);
    if (allowed === undefined) return;
    const items = Array.isArray(value) ? value.map((v, i) => [v, indexPath(path, i)] as const) : [[value, path] as const];
    for (const [item, itemPath] of items) {
      if (typeof item === 'string' && !allowed.includes(item)) {
        this.reporter.report(itemPath, RULES.SCHEMA_ENUM, unsupportedValue(item, allowed));
      }
    }
  }

  private checkFormat(value: unknown, format: string | undefined, path: string): void {
    if (format === 'int32' && typeof value === 'number' && (value < INT32_MIN || value > INT32_MAX)) {
      this.reporter.report(path, RULES.SCHEMA_FORMAT, `${value} is out of the int32 range`);
    } else if (format === 'byte' && typeof value === 'string' && !isBase64(value)) {
      this.reporter.report(path, RULES.SCHEMA_FORMAT, 'expected base64-encoded data (format: byte)');
    } else if (format === 'date-time' && typeof value === 'string' && !isDateTime(value)) {
      this.reporter.report(path, RULES.SCHEMA_FORMAT, `expected an RFC 3339 date-time, got ${JSON.stringify(value)}`);
    }
  }

  private checkIntOrString(value: unknown, path: string): void {
    if (typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value))) return;
    this.reporter.report(path, RULES.SCHEMA_INT_OR_STRING, `expected integer or string, got ${describeValue(value)}`);
  }

  private checkQuantity(value: unknown, path: string): void {
    if (typeof value === 'number' && Number.isFinite(value)) return;
    if (typeof value === 'string') {
      if (!isQuantity(value)) {
        this.reporter.report(
          path,
          RULES.SCHEMA_QUANTITY,
          `invalid quantity ${JSON.stringify(value)}: ` +
            `expected a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ... or e<n>), e.g. "250m" or "512Mi"`,
        );
      }
      return;
    }
    this.reporter.report(path, RULES.SCHEMA_QUANTITY, `expected a quantity (string or number), got ${describeValue(value)}`);
  }
}

function refName(ref: string): string {
  return ref.slice(ref.lastIndexOf('/') + 1);
}

export function unsupportedValue(value: unknown, allowed: readonly unknown[]): string {
  return `unsupported value ${JSON.stringify(value)}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
}

/** `unknown field "imagePulPolicy" (did you mean "imagePullPolicy"?)`. */
export function unknownField(key: string, known: readonly string[]): string {
  const suggestion = closest(key, known);
  return `unknown field ${JSON.stringify(key)}${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`;
}

function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(3, Math.ceil(key.length / 3)); // suggest only within this many edits
  for (const c of candidates) {
    const d = c.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
