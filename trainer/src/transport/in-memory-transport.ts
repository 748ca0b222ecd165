/**
 * N ranks in one process (like c10d's FakeProcessGroup), for unit tests. Every
 * message goes through the real codec (encode + decode), so tests also cover
 * the wire format and receivers never share memory with senders.
 */
import { TrainerError } from '../contract/errors';
import { CLOSE_CODES } from '../contract/protocol';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../contract/ports';
import { allocateFloat32Frame, decodeFrame, encodeFrame, type Frame, type Message } from './codec';
import { PeerGroup } from './peer-group';
import type { Float32Expectation, Float32MessageHeader, ReceivePlan, Transport, WaitOptions } from './transport';

export interface InMemoryTransportOptions {
  /**
   * Timeout of every wait, in milliseconds.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
  /**
   * Largest frame accepted, in bytes.
   *
   * @default DEFAULT_MAX_PAYLOAD_BYTES
   */
  readonly maxPayloadBytes?: number;
}

export class InMemoryTransport implements Transport {
  /** Create a connected group of `worldSize` transports (index = rank). */
  static createGroup(worldSize: number, options: InMemoryTransportOptions = {}): InMemoryTransport[] {
    const members: InMemoryTransport[] = [];
    for (let rank = 0; rank < worldSize; rank++) members.push(new InMemoryTransport(rank, worldSize, members, options));
    return members;
  }

  readonly timeoutMs: number;
  readonly maxPayloadBytes: number;
  private readonly group: PeerGroup;
  private closed = false;

  private constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly members: InMemoryTransport[],
    options: InMemoryTransportOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.group = new PeerGroup(rank, worldSize, this.timeoutMs, () => 'in-memory');
  }

  describePeer(rank: number): string {
    return this.group.describePeer(rank);
  }

  async send(peer: number, message: Message): Promise<void> {
    this.group.check(peer, 'send');
    this.post(peer, encodeFrame(this.rank, message));
  }

  async sendFloat32(peer: number, header: Float32MessageHeader, length: number, fill: (out: Float32Array) => void): Promise<void> {
    this.group.check(peer, 'send');
    const { frame, data } = allocateFloat32Frame(this.rank, header, length);
    fill(data);
    this.post(peer, frame);
  }

  async sendFloat32View(peer: number, header: Float32MessageHeader, data: Float32Array): Promise<void> {
    return this.sendFloat32(peer, header, data.length, (out) => out.set(data));
  }

  async flush(): Promise<void> {}

  recvFloat32Into(peer: number, expected: Float32Expectation, plan: ReceivePlan, options?: WaitOptions): Promise<void> {
    return this.group.recvInto(peer, expected, plan, options);
  }

  recv(peer: number, options?: WaitOptions): Promise<Frame> {
    return this.group.recv(peer, options);
  }

  abort(error: TrainerError): void {
    if (!this.group.failGroup(error)) return;
    for (const member of this.others()) {
      member.group.failGroup(
        new TrainerError('TRAINER_ERR_PEER_ABORTED', `rank ${member.rank}: ${this.describePeer(this.rank)} aborted: ${error.message}`),
      );
    }
  }

  /** Simulate this rank's process dying: every other rank loses it. */
  kill(): void {
    this.closed = true;
    this.group.failGroup(new TrainerError('TRAINER_ERR_CLOSED', `rank ${this.rank} was killed`));
    for (const member of this.others()) {
      member.group.failGroup(member.group.lostPeer('TRAINER_ERR_PEER_CLOSED', this.rank, `connection closed (code ${1006})`));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.group.failGroup(new TrainerError('TRAINER_ERR_CLOSED', `rank ${this.rank} transport is closed`));
    for (const member of this.others()) {
      member.group.closePeer(
        this.rank,
        member.group.lostPeer('TRAINER_ERR_PEER_CLOSED', this.rank, `connection closed (code ${CLOSE_CODES.normal})`),
      );
    }
  }

  private others(): InMemoryTransport[] {
    return this.members.filter((m) => m !== this);
  }

  private post(peer: number, frame: Buffer): void {
    const target = this.members[peer];
    try {
      target.group.deliver(this.rank, decodeFrame(frame, { maxPayloadBytes: target.maxPayloadBytes }), frame.byteLength);
    } catch (err) {
      const reason = err instanceof TrainerError ? err : new TrainerError('TRAINER_ERR_BAD_FRAME', String(err));
      target.group.failGroup(target.group.lostPeer(reason.code, this.rank, `sent an invalid frame: ${reason.message}`));
      throw reason;
    }
  }
}
