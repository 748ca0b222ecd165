/** Finding the pod specs inside workload objects, and the containers inside a pod spec. */
import { childPath, indexPath, ObjectLabel } from './findings';
import { getArray, getObject, getString, isObject, JsonObject, stringMap } from './json-value';
import { labelOf } from './manifests';

/** Where each workload kind keeps its pod template (`[]` for a bare Pod: the object is the pod). */
const TEMPLATE_LOCATIONS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** One pod template (or bare Pod) and the object that owns it. */
export interface PodTemplate {
  /** The top-level object (Deployment, Pod, ...). */
  readonly owner: JsonObject;
  readonly label: ObjectLabel;
  /** `metadata.namespace` of the owner, `''` when unset. */
  readonly namespace: string;
  /** Path of the PodSpec inside the owner, e.g. `spec.template.spec`. */
  readonly specPath: string;
  readonly spec: JsonObject;
  /** Labels the pods will carry. */
  readonly labels: Readonly<Record<string, string>>;
}

export interface ContainerAt {
  readonly container: JsonObject;
  /** e.g. `spec.template.spec.initContainers[1]`. */
  readonly path: string;
}

export function namespaceOf(obj: unknown): string {
  return getString(getObject(obj, 'metadata'), 'namespace') ?? '';
}

/** The pod template of `obj`, or undefined when its kind has none (or it is malformed). */
export function podTemplateOf(obj: unknown, index: number, file: string): PodTemplate | undefined {
  if (!isObject(obj)) return undefined;
  const location = TEMPLATE_LOCATIONS[getString(obj, 'kind') ?? ''];
  if (location === undefined) return undefined;
  let template: unknown = obj;
  for (const key of location) template = getObject(template, key);
  const spec = getObject(template, 'spec');
  if (spec === undefined) return undefined;
  return {
    owner: obj,
    label: labelOf(obj, index, file),
    namespace: namespaceOf(obj),
    specPath: [...location, 'spec'].join('.'),
    spec,
    labels: stringMap(getObject(getObject(template, 'metadata'), 'labels')),
  };
}

/** Every pod template in a list of objects. */
export function podTemplatesOf(objects: readonly unknown[], file: string): PodTemplate[] {
  const out: PodTemplate[] = [];
  objects.forEach((obj, i) => {
    const t = podTemplateOf(obj, i, file);
    if (t !== undefined) out.push(t);
  });
  return out;
}

/** `containers` and `initContainers` of a pod spec (ephemeral containers too when asked). */
export function containersOf(spec: JsonObject, specPath: string, withEphemeral = false): ContainerAt[] {
  const lists = withEphemeral ? ['containers', 'initContainers', 'ephemeralContainers'] : ['containers', 'initContainers'];
  const out: ContainerAt[] = [];
  for (const list of lists) {
    getArray(spec, list).forEach((c, i) => {
      if (isObject(c)) out.push({ container: c, path: indexPath(childPath(specPath, list), i) });
    });
  }
  return out;
}
