/**
 * Admission, the rule of who may join a star: the expected ids only (named in the refusal), one live connection per
 * id (refused for now, close code 1013), and the connection cap.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CLOSE_CODES, isTrainerError } from '../../../../src/contract';
import { Admission, fleetClientIds, maxConnectionsFor, quoteClientId } from '../../../../src/transport/star/admission';

describe('Admission', () => {
  test('a fleet of N takes "0" to "N-1" and N + 4 connections; without a fleet any id and 64 connections', () => {
    assert.deepEqual(fleetClientIds(3), ['0', '1', '2']);
    assert.equal(maxConnectionsFor(fleetClientIds(3)), 7);
    assert.equal(maxConnectionsFor(undefined), 64);
    const fleet = new Admission('Hub', fleetClientIds(3));
    assert.equal(fleet.check('2', undefined), undefined);
    const refusal = fleet.check('3', undefined);
    assert.equal(refusal?.closeCode, CLOSE_CODES.handshakeRefused);
    assert.ok(isTrainerError(refusal?.error, 'TRAINER_ERR_HANDSHAKE'));
    assert.equal(refusal?.error.message, 'client "3" refused: not an expected id ("0" to "2")');
    assert.equal(new Admission('Hub', undefined).check('anything', undefined), undefined);
  });

  test('names the ids allowed: a few listed, the rest counted; a long id is cut short and control characters escaped', () => {
    const sites = new Admission('Hub', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    assert.equal(
      sites.check('z\n', undefined)?.error.message,
      'client "z\\n" refused: not an expected id ("a", "b", "c", "d", "e" and 2 more)',
    );
    assert.equal(quoteClientId('x'.repeat(300)), JSON.stringify(`${'x'.repeat(40)}...`));
    assert.equal(new Admission('Hub', ['0']).check('1', undefined)?.error.message, 'client "1" refused: not an expected id ("0")');
  });

  test('a hello under a live id is refused for now (1013), naming where the live one is', () => {
    const refusal = new Admission('Hub', fleetClientIds(2)).check('1', { remote: '10.0.0.7:5000' });
    assert.equal(refusal?.closeCode, CLOSE_CODES.tryAgainLater);
    assert.equal(refusal?.error.message, 'client "1" refused: already connected from 10.0.0.7:5000; try again once it is gone');
  });

  test('fails options naming the field and the value', () => {
    assert.throws(() => new Admission('Hub', ['0', '0']), { message: "Hub: 'expectedClients' lists an id twice" });
    assert.throws(() => new Admission('Hub', ['']), { message: 'Hub: \'expectedClients\' must hold ids of 1 to 253 characters, got ""' });
    assert.throws(() => new Admission('Hub', undefined, 0), { message: "Hub: 'maxConnections' must be an integer >= 1, got 0" });
  });
});
