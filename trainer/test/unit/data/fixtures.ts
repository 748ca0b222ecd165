/** Synthetic dataset files and error matchers for the data tests; not a test file itself. */
import assert from 'node:assert/strict';
import { TrainerError } from '../../../src/contract';
import { CIFAR_RECORD_BYTES } from '../../../src/data';

/** A CIFAR-10 record whose R, G and B planes are constant r, g, b. */
export function cifarRecord(label: number, r: number, g: number, b: number): Buffer {
  const rec = Buffer.alloc(CIFAR_RECORD_BYTES);
  rec[0] = label;
  rec.fill(r, 1, 1 + 1024);
  rec.fill(g, 1 + 1024, 1 + 2048);
  rec.fill(b, 1 + 2048, 1 + 3072);
  return rec;
}

/** assert.throws/rejects matcher: a TrainerError with this code and exactly this message. */
export function trainerError(code: string, message: string): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof TrainerError, `expected a TrainerError, got ${String(err)}`);
    assert.equal(err.message, message);
    assert.equal(err.code, code);
    return true;
  };
}
