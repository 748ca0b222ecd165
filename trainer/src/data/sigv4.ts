/**
 * AWS Signature Version 4 for a request without a query string (all this
 * module needs: path-style S3 GETs). Follows the published algorithm:
 * canonical request -> string to sign -> HMAC chain of date/region/service.
 */
import { createHash, createHmac } from 'node:crypto';

/** sha256 of an empty payload, hex. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface SigV4Request {
  readonly method: string;
  /** Already URI-encoded path, e.g. `/bucket/some%20key`. */
  readonly path: string;
  /** Headers to sign; must include `host`. Names are case-insensitive. */
  readonly headers: Readonly<Record<string, string>>;
  /** Hex sha256 of the body (or `UNSIGNED-PAYLOAD`). */
  readonly payloadHash: string;
  /** `YYYYMMDDTHHMMSSZ`; must equal the x-amz-date header when present. */
  readonly amzDate: string;
  readonly region: string;
  readonly service: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface SigV4Signature {
  readonly authorization: string;
  readonly signature: string;
  readonly credentialScope: string;
  readonly canonicalRequest: string;
}

/** `YYYYMMDDTHHMMSSZ` for a date (UTC). */
export function toAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** RFC 3986 encoding of one path segment (unreserved characters kept, as SigV4 requires). */
export function uriEncodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** Sign a request; returns the Authorization header value and the intermediate strings. */
export function signV4(req: SigV4Request): SigV4Signature {
  const headers = Object.entries(req.headers)
    .map(([name, value]) => [name.toLowerCase(), value.trim().replace(/\s+/g, ' ')] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signedHeaders = headers.map(([name]) => name).join(';');
  const canonicalRequest = [
    req.method,
    req.path,
    '', // no query string
    ...headers.map(([name, value]) => `${name}:${value}`),
    '',
    signedHeaders,
    req.payloadHash,
  ].join('\n');
  const day = req.amzDate.slice(0, 8);
  const credentialScope = `${day}/${req.region}/${req.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', req.amzDate, credentialScope, sha256Hex(canonicalRequest)].join('\n');
  const kDate = hmac(`AWS4${req.secretAccessKey}`, day);
  const kSigning = hmac(hmac(hmac(kDate, req.region), req.service), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(stringToSign, 'utf8').digest('hex');
  const credential = `${req.accessKeyId}/${credentialScope}`;
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signature,
    credentialScope,
    canonicalRequest,
  };
}
