/**
 * (b) Validation of custom resources against the structural `openAPIV3Schema` of their
 * CustomResourceDefinition. Unknown fields are errors: the API server would prune them silently.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { SHARED_DIR } from '../test-support/paths';
import { childPath, Finding, indexPath, Reporter, RuleId, RULES } from './findings';
import { describeValue, getArray, getObject, getString, isObject, JsonObject, matchesType } from './json-value';
import { gvkKey, OBJECT_META, unknownField, unsupportedValue, validateAgainstDefinition } from './k8s-openapi';

/** The subset of a structural OpenAPI v3 schema that is checked. */
export interface StructuralSchema {
  readonly type?: string;
  readonly format?: string;
  readonly nullable?: boolean;
  readonly properties?: Readonly<Record<string, StructuralSchema>>;
  readonly additionalProperties?: StructuralSchema | boolean;
  readonly items?: StructuralSchema;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: boolean;
  readonly exclusiveMaximum?: boolean;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly anyOf?: readonly StructuralSchema[];
  readonly oneOf?: readonly StructuralSchema[];
  readonly allOf?: readonly StructuralSchema[];
  readonly 'x-kubernetes-preserve-unknown-fields'?: boolean;
  readonly 'x-kubernetes-int-or-string'?: boolean;
  readonly 'x-kubernetes-embedded-resource'?: boolean;
}

/** One served version of one CRD. */
export interface CrdVersion {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly schema: StructuralSchema;
  /** Where the CRD came from (file name), for messages. */
  readonly source: string;
}

/** Finds the CRD version for a `group/version/kind` key (see `gvkKey`). A `Map` is one. */
export interface CrdIndex {
  get(gvk: string): CrdVersion | undefined;
}

export const DEFAULT_CRD_DIR = join(SHARED_DIR, 'crds');

const crdDirCache = new Map<string, CrdIndex>();

/**
 * The CRDs in `*.yaml` files of `dir` (one instance per directory per process). Each file is
 * parsed on the first lookup of a group it mentions, so validating a ServiceMonitor does not pay
 * for parsing the 400 kB Argo CD Application CRD.
 */
export function loadCrdIndex(dir: string = DEFAULT_CRD_DIR): CrdIndex {
  let index = crdDirCache.get(dir);
  if (index === undefined) {
    index = new CrdDirectory(dir);
    crdDirCache.set(dir, index);
  }
  return index;
}

class CrdDirectory implements CrdIndex {
  private readonly pending: { readonly path: string; readonly file: string; readonly text: string; readonly groups: ReadonlySet<string> }[];
  private readonly versions = new Map<string, CrdVersion>();

  constructor(dir: string) {
    this.pending = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
      .map((file) => {
        const path = join(dir, file);
        const text = readFileSync(path, 'utf8');
        // Every scalar `group:` line; a false positive only costs one parse.
        const groups = new Set([...text.matchAll(/^\s*group:\s*["']?([^\s"']+)["']?\s*$/gm)].map((m) => m[1]));
        return { path, file, text, groups };
      });
  }

  get(gvk: string): CrdVersion | undefined {
    const group = gvk.slice(0, gvk.indexOf('/'));
    for (let i = 0; i < this.pending.length;) {
      const f = this.pending[i];
      if (!f.groups.has(group)) {
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      for (const doc of parseAllDocuments(f.text)) {
        if (doc.errors.length > 0) throw new Error(`${f.path}: ${doc.errors[0].message}`);
        addCrd(this.versions, doc.toJS(), f.file);
      }
    }
    return this.versions.get(gvk);
  }
}

/** Adds the versions of `crd` (if it is a CustomResourceDefinition with schemas) to `index`. */
export function addCrd(index: Map<string, CrdVersion>, crd: unknown, source: string): void {
  if (getString(crd, 'kind') !== 'CustomResourceDefinition') return;
  const spec = getObject(crd, 'spec');
  const group = getString(spec, 'group');
  const kind = getString(getObject(spec, 'names'), 'kind');
  if (group === undefined || kind === undefined) return;
  for (const v of getArray(spec, 'versions')) {
    const version = getString(v, 'name');
    const schema = getObject(getObject(v, 'schema'), 'openAPIV3Schema');
    if (version !== undefined && schema !== undefined) {
      index.set(gvkKey(group, version, kind), { group, version, kind, schema, source });
    }
  }
}

/** Checks a whole custom resource: apiVersion/kind, metadata against ObjectMeta, the rest against the CRD. */
export function validateCustomResource(obj: JsonObject, crd: CrdVersion, reporter: Reporter): void {
  validateAgainstDefinition(obj.metadata, OBJECT_META, 'metadata', reporter);
  // apiVersion and kind were matched to find the CRD; metadata is ObjectMeta whatever the CRD says.
  const rest = withoutRootFields(obj);
  const rootProperties = withoutRootFields(crd.schema.properties ?? {});
  const rootRequired = (crd.schema.required ?? []).filter((k) => !ROOT_FIELDS.has(k));
  new StructuralWalker(reporter).check(rest, { ...crd.schema, properties: rootProperties, required: rootRequired }, '');
}

const ROOT_FIELDS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'metadata']);

function withoutRootFields<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => !ROOT_FIELDS.has(k)));
}

/** Checks `value` at `path` against a structural schema (exported for tests and embedded schemas). */
export function validateStructural(value: unknown, schema: StructuralSchema, path: string, reporter: Reporter): void {
  new StructuralWalker(reporter).check(value, schema, path);
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

const patternCache = new Map<string, RegExp | null>();

function compilePattern(pattern: string): RegExp | null {
  let re = patternCache.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(pattern);
    } catch {
      re = null; // an RE2 construct JavaScript cannot compile: skip rather than guess
    }
    patternCache.set(pattern, re);
  }
  return re;
}

class StructuralWalker {
  /**
   * @param branch when true, the walker checks an anyOf/oneOf/allOf branch: value validations only,
   *   no unknown-field checks (branches may not declare properties in a structural schema).
   */
  constructor(
    private readonly reporter: Reporter,
    private readonly branch = false,
  ) {}

  check(value: unknown, schema: StructuralSchema, path: string): void {
    if (value === undefined) return;
    if (value === null) {
      if (schema.nullable !== true && !this.branch) {
        this.reporter.report(path, RULES.CRD_TYPE, `expected ${schema.type ?? 'a value'}, got null`);
      }
      return;
    }
    if (schema['x-kubernetes-int-or-string'] === true) {
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) {
        this.reporter.report(path, RULES.CRD_INT_OR_STRING, `expected integer or string, got ${describeValue(value)}`);
      }
    } else {
      if (schema.type !== undefined && !matchesType(value, schema.type)) {
        this.reporter.report(path, RULES.CRD_TYPE, `expected ${schema.type}, got ${describeValue(value)}`);
        return;
      }
      this.checkBranches(value, schema, path);
    }
    if (schema.enum !== undefined && !schema.enum.includes(value)) {
      this.reporter.report(path, RULES.CRD_ENUM, unsupportedValue(value, schema.enum));
    }
    if (typeof value === 'string') this.checkString(value, schema, path);
    else if (typeof value === 'number') this.checkNumber(value, schema, path);
    else if (Array.isArray(value)) this.checkArray(value, schema, path);
    else if (isObject(value)) this.checkObject(value, schema, path);
  }

  private checkBranches(value: unknown, schema: StructuralSchema, path: string): void {
    for (const sub of schema.allOf ?? []) new StructuralWalker(this.reporter, true).check(value, sub, path);
    const anyOf = schema.anyOf ?? schema.oneOf;
    if (anyOf === undefined || anyOf.length === 0) return;
    const matches = anyOf.filter((sub) => {
      const trial: Finding[] = [];
      new StructuralWalker(this.reporter.into(trial), true).check(value, sub, path);
      return trial.length === 0;
    }).length;
    if (schema.anyOf !== undefined && matches === 0) {
      this.reporter.report(path, RULES.CRD_ANY_OF, 'does not match any of the schemas in anyOf');
    } else if (schema.anyOf === undefined && matches !== 1) {
      this.reporter.report(path, RULES.CRD_ANY_OF, `must match exactly one schema in oneOf, matched ${matches}`);
    }
  }

  private checkString(value: string, schema: StructuralSchema, path: string): void {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      this.report(path, RULES.CRD_LENGTH, `must be at least ${plural(schema.minLength, 'character')}, got ${length}`);
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      this.report(path, RULES.CRD_LENGTH, `must be at most ${plural(schema.maxLength, 'character')}, got ${length}`);
    }
    if (schema.pattern !== undefined && compilePattern(schema.pattern)?.test(value) === false) {
      this.report(path, RULES.CRD_PATTERN, `${JSON.stringify(value)} does not match pattern ${JSON.stringify(schema.pattern)}`);
    }
  }

  private checkNumber(value: number, schema: StructuralSchema, path: string): void {
    const { minimum, maximum } = schema;
    if (minimum !== undefined && (value < minimum || (schema.exclusiveMinimum === true && value === minimum))) {
      this.report(path, RULES.CRD_RANGE, `must be ${schema.exclusiveMinimum === true ? '>' : '>='} ${minimum}, got ${value}`);
    }
    if (maximum !== undefined && (value > maximum || (schema.exclusiveMaximum === true && value === maximum))) {
      this.report(path, RULES.CRD_RANGE, `must be ${schema.exclusiveMaximum === true ? '<' : '<='} ${maximum}, got ${value}`);
    }
  }

  private checkArray(value: readonly unknown[], schema: StructuralSchema, path: string): void {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      this.report(path, RULES.CRD_ITEMS, `must have at least ${plural(schema.minItems, 'item')}, got ${value.length}`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      this.report(path, RULES.CRD_ITEMS, `must have at most ${plural(schema.maxItems, 'item')}, got ${value.length}`);
    }
    if (schema.items !== undefined) {
      for (let i = 0; i < value.length; i++) this.check(value[i], schema.items, indexPath(path, i));
    }
  }

  private checkObject(value: JsonObject, schema: StructuralSchema, path: string): void {
    const properties = schema.properties ?? {};
    const additional = schema.additionalProperties;
    const open = this.branch || additional === true || schema['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = schema['x-kubernetes-embedded-resource'] === true;
    for (const [key, child] of Object.entries(value)) {
      const keyPath = childPath(path, key);
      const propSchema = properties[key];
      if (propSchema !== undefined) this.check(child, propSchema, keyPath);
      else if (isObject(additional)) this.check(child, additional, keyPath);
      else if (embedded && (key === 'apiVersion' || key === 'kind')) continue;
      else if (embedded && key === 'metadata') validateAgainstDefinition(child, OBJECT_META, keyPath, this.reporter);
      else if (!open) this.report(keyPath, RULES.CRD_UNKNOWN_FIELD, unknownField(key, Object.keys(properties)));
    }
    for (const key of schema.required ?? []) {
      if (value[key] === undefined) this.report(path, RULES.CRD_REQUIRED, `missing required field "${key}"`);
    }
  }

  private report(path: string, rule: RuleId, detail: string): void {
    this.reporter.report(path, rule, detail);
  }
}
