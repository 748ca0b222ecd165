/** What every WebSocket endpoint does with a whole message it read: frames are binary, decoded within maxPayloadBytes. */
import { TrainerError } from '../../contract/errors';
import { decodeFrame, type Frame } from '../codec';

/** Decode a received message, or throw TRAINER_ERR_BAD_FRAME (a text message) or the codec's error. */
export function decodeMessage(data: Buffer, isBinary: boolean, maxPayloadBytes: number): Frame {
  if (!isBinary) throw new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: text message (frames are binary)');
  return decodeFrame(data, { maxPayloadBytes });
}
