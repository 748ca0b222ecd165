/** Runs every pass over the objects of one manifest file. */
import { basename } from 'node:path';
import { addCrd, CrdIndex, CrdVersion, loadCrdIndex, validateCustomResource } from './crd-schema';
import { Finding, Reporter, RULES } from './findings';
import { getString, isObject } from './json-value';
import { definitionNameFor, gvkKey, isBuiltinGroup, splitApiVersion, validateAgainstDefinition } from './k8s-openapi';
import { labelOf, loadManifests } from './manifests';
import { validateSecurityBaseline } from './security-baseline';
import { validateSemantics } from './semantics';

export interface ValidateOptions {
  /** Names the file in every finding, e.g. `ddp.k8s.yaml`. */
  readonly file: string;
  /**
   * CRDs that custom resources are checked against; CustomResourceDefinitions among the
   * validated objects are added to them.
   *
   * @default - the CRDs in ../shared/crds (each file parsed once per process, when first needed)
   */
  readonly crds?: CrdIndex;
}

/** (a) + (b): each object against its Kubernetes definition or its CRD schema. */
export function validateSchema(objects: readonly unknown[], opts: ValidateOptions): Finding[] {
  const findings: Finding[] = [];
  let crds: CrdIndex | undefined;
  const crdsFor = (): CrdIndex => {
    crds ??= withLocalCrds(opts.crds ?? loadCrdIndex(), objects);
    return crds;
  };
  objects.forEach((obj, i) => {
    const reporter = new Reporter(labelOf(obj, i, opts.file), findings);
    if (!isObject(obj)) {
      reporter.report(
        '',
        RULES.SCHEMA_NOT_AN_OBJECT,
        `expected a Kubernetes object, got ${obj === null ? 'null' : Array.isArray(obj) ? 'array' : typeof obj}`,
      );
      return;
    }
    const apiVersion = getString(obj, 'apiVersion');
    const kind = getString(obj, 'kind');
    if (apiVersion === undefined || kind === undefined) {
      reporter.report('', RULES.SCHEMA_UNKNOWN_KIND, 'missing apiVersion or kind');
      return;
    }
    const definition = definitionNameFor(apiVersion, kind);
    if (definition !== undefined) {
      validateAgainstDefinition(obj, definition, '', reporter);
      return;
    }
    const { group, version } = splitApiVersion(apiVersion);
    if (isBuiltinGroup(group)) {
      reporter.report('', RULES.SCHEMA_UNKNOWN_KIND, `Kubernetes 1.27 has no kind ${kind} in ${apiVersion}`);
      return;
    }
    const crd = crdsFor().get(gvkKey(group, version, kind));
    if (crd === undefined) {
      reporter.report(
        '',
        RULES.SCHEMA_UNKNOWN_KIND,
        `no CustomResourceDefinition for ${kind} in ${apiVersion} (looked in shared/crds and this file)`,
      );
      return;
    }
    validateCustomResource(obj, crd, reporter);
  });
  return findings;
}

/** CustomResourceDefinitions among `objects` take precedence over `shared`. */
function withLocalCrds(shared: CrdIndex, objects: readonly unknown[]): CrdIndex {
  const local = new Map<string, CrdVersion>();
  for (const o of objects) addCrd(local, o, 'this file');
  return local.size === 0 ? shared : { get: (gvk) => local.get(gvk) ?? shared.get(gvk) };
}

/** Every pass: schema (a, b), semantics (c) and security baseline (d), in that order. */
export function validateObjects(objects: readonly unknown[], opts: ValidateOptions): Finding[] {
  return [...validateSchema(objects, opts), ...validateSemantics(objects, opts.file), ...validateSecurityBaseline(objects, opts.file)];
}

/** Result of validating one manifest file. */
export interface FileValidation {
  readonly file: string;
  readonly objects: readonly unknown[];
  readonly findings: readonly Finding[];
}

/** Loads a multi-document YAML file and validates it; findings name the file by its base name. */
export function validateManifestFile(path: string, opts: Partial<ValidateOptions> = {}): FileValidation {
  const file = opts.file ?? basename(path);
  const objects = loadManifests(path);
  return { file, objects, findings: validateObjects(objects, { ...opts, file }) };
}
