import { isIP } from 'node:net';
import { Construct } from 'constructs';
import type { ResourceSpec } from './workload';

/** The one error a construct throws for a bad prop: names the construct, the prop, the value and what is allowed. */
export class PropError extends Error {
  constructor(
    scope: Construct,
    /** The prop, as named in the construct's props (e.g. "cutLayer", "resources.gpus"). */
    readonly prop: string,
    readonly value: unknown,
    /** What is allowed, e.g. "an integer from 1 to 2". */
    readonly allowed: string,
  ) {
    super(`${scope.constructor.name} '${scope.node.id}': '${prop}' must be ${allowed}, got ${show(value)}`);
    this.name = 'PropError';
  }
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** One component of an image name: lowercase letters and digits, single '.', '_' or '-' between them. */
const NAME_COMPONENT = /[a-z0-9]+(?:[._-][a-z0-9]+)*/.source;
/** name[:tag][@sha256:digest] with an explicit tag or digest (never implicitly `latest`). */
const IMAGE_REF = new RegExp(
  `^(?:${NAME_COMPONENT}(?::[0-9]+)?\\/)?${NAME_COMPONENT}(?:\\/${NAME_COMPONENT})*` +
    /(?::([\w][\w.-]{0,127}))?(?:@sha256:[a-f0-9]{64})?$/.source,
);

export function checkInt(scope: Construct, prop: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const allowed = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new PropError(scope, prop, value, allowed);
  }
  return value;
}

export function checkPositive(scope: Construct, prop: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new PropError(scope, prop, value, 'a number > 0');
  return value;
}

export function checkDnsLabel(scope: Construct, prop: string, value: string, maxLength = 63): string {
  if (!DNS_1123_LABEL.test(value) || value.length > maxLength) {
    throw new PropError(scope, prop, value, `a DNS-1123 label (lowercase letters, digits and '-', at most ${maxLength} characters)`);
  }
  return value;
}

/** An image reference pinned to a tag other than `latest`, or to a digest. */
export function checkImage(scope: Construct, prop: string, value: string): string {
  const match = IMAGE_REF.exec(value);
  const pinned = match !== null && (value.includes('@sha256:') || (match[1] !== undefined && match[1] !== 'latest'));
  if (!pinned) {
    throw new PropError(
      scope,
      prop,
      value,
      'an image reference pinned to a version, like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest")',
    );
  }
  return value;
}

export function checkOneOf<T extends string>(scope: Construct, prop: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new PropError(scope, prop, value, `one of ${allowed.join(', ')}`);
  return value as T;
}

/** Requests of at least 1 and limits no lower than the requests. */
export function checkResources(scope: Construct, prop: string, spec: ResourceSpec): ResourceSpec {
  checkInt(scope, `${prop}.cpuRequestMillis`, spec.cpuRequestMillis, 1);
  checkInt(scope, `${prop}.cpuLimitMillis`, spec.cpuLimitMillis, spec.cpuRequestMillis);
  checkInt(scope, `${prop}.memoryRequestMiB`, spec.memoryRequestMiB, 1);
  checkInt(scope, `${prop}.memoryLimitMiB`, spec.memoryLimitMiB, spec.memoryRequestMiB);
  if (spec.gpus !== undefined) checkInt(scope, `${prop}.gpus`, spec.gpus, 0);
  return spec;
}

export function checkHttpUrl(scope: Construct, prop: string, value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return value;
  } catch {
    // fall through
  }
  throw new PropError(scope, prop, value, 'an http:// or https:// URL');
}

/** An IPv4 or IPv6 CIDR block, as a NetworkPolicy ipBlock takes it. */
export function checkCidr(scope: Construct, prop: string, value: string): string {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(value);
  const family = match ? isIP(match[1]) : 0;
  if (!match || family === 0 || Number(match[2]) > (family === 4 ? 32 : 128)) {
    throw new PropError(scope, prop, value, 'a CIDR block like "10.96.0.1/32" or "fd00::/8"');
  }
  return value;
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** A non-empty label selector (matchLabels): valid keys and values. */
export function checkLabelSelector(scope: Construct, prop: string, value: Readonly<Record<string, string>>): Record<string, string> {
  const entries = Object.entries(value);
  const bad = entries.find(([k, v]) => !LABEL_KEY.test(k) || k.length > 316 || typeof v !== 'string' || !LABEL_VALUE.test(v));
  if (entries.length === 0 || bad) {
    throw new PropError(scope, prop, value, 'at least one label, each with a valid Kubernetes label key and value');
  }
  return { ...value };
}

/**
 * A construct id a name is derived from without loss: letters and digits, with single '-' between them. CamelCase
 * becomes kebab-case by a fixed rule ('DdpMnist' -> 'ddp-mnist'); anything else ('_', '.', spaces, a leading '-',
 * letters outside a-z) would be dropped or replaced, so two different ids could end up with the same name.
 */
const NAMEABLE_ID = /^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$/;

/** A construct id that cannot become the construct's name: names the construct's path, the id and what is allowed. */
export class ConstructIdError extends Error {
  constructor(
    scope: Construct,
    /** What is allowed. */
    readonly allowed: string,
  ) {
    super(
      `${scope.constructor.name} at '${scope.node.path}': construct id ${JSON.stringify(scope.node.id)} ${allowed}, ` +
        `or set the 'name' prop`,
    );
    this.name = 'ConstructIdError';
  }
}

/**
 * The construct's name: the `name` prop as given (a DNS-1123 label of at most `maxLength`), else its id in kebab-case.
 * An id that is no DNS name without loss is refused, with the construct's path, rather than silently renamed.
 */
export function nameOf(scope: Construct, name: string | undefined, maxLength = 63): string {
  if (name !== undefined) return checkDnsLabel(scope, 'name', name, maxLength);
  const id = scope.node.id;
  if (!NAMEABLE_ID.test(id)) {
    throw new ConstructIdError(
      scope,
      "is not a DNS name: use letters, digits and single '-' between them " + "(CamelCase becomes kebab-case, 'DdpMnist' -> 'ddp-mnist')",
    );
  }
  // A NAMEABLE_ID is already letters, digits and single '-': kebab-case needs only a '-' before each inner capital.
  const derived = id.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
  if (derived.length > maxLength) {
    throw new ConstructIdError(scope, `gives the name ${JSON.stringify(derived)} (${derived.length} characters): at most ${maxLength}`);
  }
  return derived;
}
