import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Checkpoint,
  type CheckpointFingerprint,
  checkpointFileName,
  checkpointFingerprint,
  decodeCheckpoint,
  encodeCheckpoint,
  loadLatestCheckpoint,
  writeCheckpoint,
} from '../../../src/checkpoint/checkpoint';

const FINGERPRINT: CheckpointFingerprint = {
  model: 'mlp',
  dataset: 'mnist',
  datasetSize: 512,
  worldSize: 2,
  batchSize: 32,
  seed: 42,
  optimizer: 'adam',
  learningRate: 0.001,
};

function checkpoint(epoch: number, weights = 5, state = 11): Checkpoint {
  return {
    epoch,
    fingerprint: FINGERPRINT,
    weights: Float32Array.from({ length: weights }, (_, i) => epoch + i / 7),
    optimizerState: Float32Array.from({ length: state }, (_, i) => -i * 1e-3),
  };
}

describe('checkpoint', () => {
  let root: string;
  let n = 0;
  const fresh = () => join(root, `case-${n++}`);
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-ckpt-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('encode/decode round-trip, with a 4-byte aligned payload', () => {
    for (const weights of [0, 1, 5, 1000]) {
      const original = checkpoint(3, weights, 3);
      const bytes = encodeCheckpoint(original);
      const decoded = decodeCheckpoint(bytes, 'mem');
      assert.equal(decoded.epoch, 3);
      assert.deepEqual(decoded.fingerprint, FINGERPRINT);
      assert.deepEqual(decoded.weights, original.weights);
      assert.deepEqual(decoded.optimizerState, original.optimizerState);
      assert.equal((bytes.length - 4 * (weights + 3)) % 4, 0);
    }
  });

  test('writes atomically, loads the newest epoch and keeps the newest two', async () => {
    const dir = fresh();
    for (const epoch of [1, 2, 3]) await writeCheckpoint(dir, 0, checkpoint(epoch));
    assert.deepEqual((await readdir(dir)).sort(), [checkpointFileName(2, 0), checkpointFileName(3, 0)]);
    const loaded = await loadLatestCheckpoint(dir, 0, FINGERPRINT);
    assert.equal(loaded?.epoch, 3);
    assert.equal(loaded?.path, join(dir, 'epoch-000003.rank-0.ckpt'));
    assert.deepEqual(loaded?.weights, checkpoint(3).weights);
  });

  test('ranks sharing a folder each see only their own files', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, 0, checkpoint(2));
    await writeCheckpoint(dir, 1, checkpoint(1));
    assert.equal((await loadLatestCheckpoint(dir, 0, FINGERPRINT))?.epoch, 2);
    assert.equal((await loadLatestCheckpoint(dir, 1, FINGERPRINT))?.epoch, 1);
    assert.equal(await loadLatestCheckpoint(dir, 2, FINGERPRINT), undefined);
  });

  test('a missing folder means no checkpoint', async () => {
    assert.equal(await loadLatestCheckpoint(join(root, 'nope'), 0, FINGERPRINT), undefined);
  });

  test('fails if the checkpoint was written by another configuration, naming every difference', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, 0, checkpoint(1));
    await assert.rejects(loadLatestCheckpoint(dir, 0, { ...FINGERPRINT, worldSize: 4, batchSize: 64 }), {
      code: 'TRAINER_ERR_CHECKPOINT',
      message:
        `rank 0 cannot resume from checkpoint ${join(dir, 'epoch-000001.rank-0.ckpt')}: it was written by a different configuration ` +
        '(worldSize (WORLD_SIZE) is 2 in the checkpoint, 4 now; batchSize (TENSORFLEET_BATCH_SIZE) is 32 in the checkpoint, 64 now); ' +
        'restore the original settings, or point TENSORFLEET_CHECKPOINT_DIR at an empty folder to start over',
    });
  });

  test("a user model's URI and a regression task are in the fingerprint; a classification run matches an older checkpoint", async () => {
    const dir = fresh();
    await writeCheckpoint(dir, 0, {
      ...checkpoint(1),
      fingerprint: checkpointFingerprint({ ...FINGERPRINT, modelUri: '/models/a/model.json', task: 'classification' }),
    });
    assert.equal(
      (
        await loadLatestCheckpoint(
          dir,
          0,
          checkpointFingerprint({ ...FINGERPRINT, modelUri: '/models/a/model.json', task: 'classification' }),
        )
      )?.epoch,
      1,
    );
    await assert.rejects(
      loadLatestCheckpoint(dir, 0, checkpointFingerprint({ ...FINGERPRINT, modelUri: '/models/b/model.json', task: 'regression' })),
      {
        code: 'TRAINER_ERR_CHECKPOINT',
        message:
          `rank 0 cannot resume from checkpoint ${join(dir, 'epoch-000001.rank-0.ckpt')}: it was written by a different configuration ` +
          '(modelUri (TENSORFLEET_MODEL_URI) is "/models/a/model.json" in the checkpoint, ' +
          '"/models/b/model.json" now; task (TENSORFLEET_TASK) is undefined in the checkpoint, "regression" now); ' +
          'restore the original settings, or point TENSORFLEET_CHECKPOINT_DIR at an empty folder to start over',
      },
    );
    const old = fresh();
    await writeCheckpoint(old, 0, checkpoint(1));
    assert.equal((await loadLatestCheckpoint(old, 0, checkpointFingerprint({ ...FINGERPRINT, task: 'classification' })))?.epoch, 1);
  });

  test('a corrupt newest file is skipped, with a warning, for the previous epoch', async () => {
    const dir = fresh();
    await writeCheckpoint(dir, 0, checkpoint(1));
    const newest = await writeCheckpoint(dir, 0, checkpoint(2));
    const bytes = await readFile(newest);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(newest, bytes);
    const warnings: string[] = [];
    const loaded = await loadLatestCheckpoint(dir, 0, FINGERPRINT, { onWarning: (w) => warnings.push(w) });
    assert.equal(loaded?.epoch, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /epoch-000002\.rank-0\.ckpt is unreadable: payload sha256 [0-9a-f]+ does not match/);
  });

  test('fails to decode a truncated file or a foreign file', () => {
    const bytes = encodeCheckpoint(checkpoint(1));
    assert.throws(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), 'x'), {
      code: 'TRAINER_ERR_CHECKPOINT',
      message: /checkpoint x is unreadable: \d+ bytes, the header describes \d+/,
    });
    assert.throws(() => decodeCheckpoint(Buffer.from('hello world, not a checkpoint'), 'y'), {
      message: 'checkpoint y is unreadable: not a tensorfleet checkpoint (bad magic)',
    });
  });

  test('fails with TRAINER_ERR_CHECKPOINT when the folder is not writable, leaving no temp file', async () => {
    const blocker = join(root, 'blocker-file');
    await writeFile(blocker, 'x');
    await assert.rejects(writeCheckpoint(join(blocker, 'sub'), 0, checkpoint(1)), {
      code: 'TRAINER_ERR_CHECKPOINT',
      message: /rank 0 could not write checkpoint/,
    });
  });
});
