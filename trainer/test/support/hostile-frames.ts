/** Frames a hostile peer sends (issue 17), built byte by byte where msgpackr would refuse to encode them. */
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { MESSAGE_TYPES } from '../../src/contract';
import { encodeFrame } from '../../src/transport/codec';

/** A placeholder string the encoder writes as msgpack fixstr bytes, swapped for hand-made bytes afterwards. */
export const PLACEHOLDER = 'ZQZQ';

/**
 * An error frame from `rank` whose meta is `meta`, where the placeholder string stands for `depth` nested lists
 * around it (msgpackr cannot pack that deep itself, but decodes it: what finding 1 sent).
 */
export function errorFrame(rank: number, meta: Record<string, unknown>, depth = 0): Buffer {
  const frame = encodeFrame(rank, { type: MESSAGE_TYPES.error, step: 0, seq: 0, meta });
  if (depth === 0) return frame;
  const header = frame.subarray(4, 4 + frame.readUInt32LE(0));
  const fixstr = Buffer.concat([Buffer.from([0xa0 | PLACEHOLDER.length]), Buffer.from(PLACEHOLDER)]);
  const at = header.indexOf(fixstr);
  assert.ok(at >= 0);
  const nested = Buffer.concat([header.subarray(0, at), Buffer.alloc(depth, 0x91), header.subarray(at)]);
  const padded = Math.ceil((4 + nested.length) / 8) * 8;
  const out = Buffer.alloc(padded);
  out.writeUInt32LE(nested.length, 0);
  nested.copy(out, 4);
  return out;
}

/** A frame with `header` packed as it is (no validation), followed by `payloadBytes` zero bytes. */
export function rawFrame(header: Record<string, unknown>, payloadBytes = 0): Buffer {
  const packed = new Packr({ useRecords: false, variableMapSize: true }).pack(header);
  const start = Math.ceil((4 + packed.length) / 8) * 8;
  const out = Buffer.alloc(start + payloadBytes);
  out.writeUInt32LE(packed.length, 0);
  packed.copy(out, 4);
  return out;
}
