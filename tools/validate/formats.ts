/** String grammars that Kubernetes enforces: quantities, DNS names, IANA service names, images. */

// apimachinery resource.ParseQuantity: <sign>?<digits>[.<digits>]<suffix>, where suffix is a binary SI
// suffix, a decimal SI suffix (n, u, m, '', k, M, G, T, P, E) or a decimal exponent e<int>/E<int>.
const QUANTITY = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z](?:[-a-z0-9]*[a-z0-9])?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const IMAGE_TAG = /^\w[\w.-]{0,127}$/;
const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Whether a string parses as a Kubernetes resource quantity (`500m`, `1.5Gi`, `1e3`). */
export function isQuantity(text: string): boolean {
  return QUANTITY.test(text);
}

/** RFC 1123 label: at most 63 lowercase alphanumerics or '-', starting and ending alphanumeric. */
export function isDns1123Label(text: string): boolean {
  return text.length <= 63 && DNS1123_LABEL.test(text);
}

/** RFC 1123 subdomain: dot-separated labels, at most 253 characters (most `metadata.name`s). */
export function isDns1123Subdomain(text: string): boolean {
  return text.length <= 253 && DNS1123_SUBDOMAIN.test(text);
}

/** RFC 1035 label: an RFC 1123 label that starts with a letter (Service names). */
export function isDns1035Label(text: string): boolean {
  return text.length <= 63 && DNS1035_LABEL.test(text);
}

/**
 * IANA_SVC_NAME (container port names, named targetPorts): at most 15 lowercase alphanumerics or '-',
 * at least one letter, no leading, trailing or doubled '-'.
 */
export function isIanaSvcName(text: string): boolean {
  return (
    text.length >= 1 &&
    text.length <= 15 &&
    /^[a-z0-9-]+$/.test(text) &&
    /[a-z]/.test(text) &&
    !text.startsWith('-') &&
    !text.endsWith('-') &&
    !text.includes('--')
  );
}

/** Standard base64 with padding (OpenAPI `format: byte`, e.g. Secret `data`). */
export function isBase64(text: string): boolean {
  return BASE64.test(text);
}

/** RFC 3339 date-time (OpenAPI `format: date-time`). */
export function isDateTime(text: string): boolean {
  return RFC3339.test(text);
}

/** A container image reference split into name, tag and digest. */
export interface ImageRef {
  /** Registry and repository, e.g. `ghcr.io/org/app`. */
  readonly name: string;
  /** @default - no tag */
  readonly tag?: string;
  /** Everything after `@`, e.g. `sha256:...`. @default - no digest */
  readonly digest?: string;
}

/** Splits `registry:5000/org/app:1.2@sha256:...`; a ':' before the last '/' is a registry port, not a tag. */
export function parseImageRef(image: string): ImageRef {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { name: rest, tag, digest };
}

export function isValidImageTag(tag: string): boolean {
  return IMAGE_TAG.test(tag);
}

export function isValidImageDigest(digest: string): boolean {
  return IMAGE_DIGEST.test(digest);
}
