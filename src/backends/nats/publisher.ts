import { createInbox, headers as natsHeaders, type NatsConnection, type Subscription } from 'nats';
import { SluiceError } from '../../core/errors.js';

/** What JetStream answers to a publish: where the message went, or that its id was seen. */
export interface PubAck {
  seq: number;
  duplicate: boolean;
}

interface InFlight {
  resolve: (ack: PubAck) => void;
  reject: (e: Error) => void;
}

/**
 * Pipelined JetStream publishing: every message goes out at once with its own reply subject
 * under one inbox, and the acknowledgements are matched as they come back. `js.publish()`
 * waits for a request-reply round trip per message and tops out near 21k msg/s here; this
 * keeps thousands in flight on one connection. A caller awaits all the acks of its batch
 * and answers its producer only then: acknowledged means acknowledged by the server.
 */
export class PipelinedPublisher {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  private readonly inFlight = new Map<number, InFlight>();
  private next = 1;

  constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
  ) {
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onReply(msg.subject, msg.data, msg.headers?.code ?? 0) });
  }

  /** Messages sent and not yet acknowledged. */
  get pending(): number {
    return this.inFlight.size;
  }

  /**
   * Publishes every message and resolves with their acks, in order. Rejects (and forgets the
   * rest) at the first refusal, or when the acks are not all back within `timeoutMs`; the
   * messages that did land stay in the stream, and a retry with the same ids is a duplicate.
   */
  publishAll(messages: readonly { subject: string; data: Uint8Array; msgId: string }[], timeoutMs: number): Promise<PubAck[]> {
    if (messages.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const acks: PubAck[] = new Array(messages.length);
      const ids: number[] = [];
      let left = messages.length;
      let settled = false;
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const id of ids) this.inFlight.delete(id);
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `NATS did not acknowledge ${left} of ${messages.length} messages within ${timeoutMs} ms`, { retryAfter: 1 })),
        timeoutMs,
      );
      messages.forEach((m, i) => {
        const id = this.next++;
        ids.push(id);
        this.inFlight.set(id, {
          resolve: (ack) => {
            acks[i] = ack;
            if (--left === 0 && !settled) {
              settled = true;
              clearTimeout(timer);
              resolve(acks);
            }
          },
          reject: fail,
        });
        const h = natsHeaders();
        h.set('Nats-Msg-Id', m.msgId);
        try {
          this.nc.publish(m.subject, m.data, { reply: `${this.inbox}.${id}`, headers: h });
        } catch (e: unknown) {
          fail(new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `cannot publish to NATS: ${(e as Error).message}`, { retryAfter: 1 }));
        }
      });
    });
  }

  private onReply(subject: string, data: Uint8Array, status: number): void {
    const id = Number(subject.slice(this.inbox.length + 1));
    const waiter = this.inFlight.get(id);
    if (!waiter) return;
    this.inFlight.delete(id);
    if (status === 503 || data.length === 0) {
      waiter.reject(new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `the JetStream stream ${this.stream} does not answer (no responders)`, { retryAfter: 1 }));
      return;
    }
    const ack = JSON.parse(Buffer.from(data).toString('utf8')) as { seq?: number; duplicate?: boolean; error?: { code: number; description: string } };
    if (ack.error || typeof ack.seq !== 'number') {
      waiter.reject(new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `JetStream refused a message: ${ack.error?.description ?? 'no sequence in its answer'}`, { retryAfter: 1 }));
      return;
    }
    waiter.resolve({ seq: ack.seq, duplicate: ack.duplicate === true });
  }

  close(): void {
    this.sub.unsubscribe();
    const closed = new SluiceError('SLUICE_ERR_SHUTTING_DOWN', 'the log is closed', { retryAfter: 1 });
    for (const w of this.inFlight.values()) w.reject(closed);
    this.inFlight.clear();
  }
}
