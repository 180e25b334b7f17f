/**
 * MQTT 5 request/response over the async client: the response topic it subscribes to once, the correlation
 * data of each request and the requests waiting for their response. It uses only the client's public
 * `publish()` and `subscribe()`, and never touches the machine or the connection.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";
import { hex } from "./_bytes.ts";
import { deferred, onAbort, type Waiter } from "./_waiter.ts";
import type { PublishOptions, SubscribeOptions } from "./client_options.ts";
import type { Message } from "./message.ts";
import type { Subscription } from "./subscription.ts";

/** What requests need from the client. */
export interface RequestClient {
  /** The client identifier, which names the response topic. */
  readonly clientId: string;
  /** Publishes a request. */
  publish(topic: string, payload: string | Uint8Array, options: PublishOptions): Promise<void>;
  /** Subscribes to the response topic. */
  subscribe(filters: string, options: SubscribeOptions): Promise<Subscription>;
}

/** The requests of one client waiting for their responses, by correlation data. */
export class Requests {
  readonly #client: RequestClient;
  readonly #options: { readonly protocolVersion?: number; readonly responseTopicPrefix?: string };
  readonly #waiting = new Map<string, Waiter<Message>>();
  #responses: Promise<string> | undefined;

  /**
   * @param client The client that publishes requests and receives responses.
   * @param options The client's options: `protocolVersion` and `responseTopicPrefix`.
   */
  constructor(
    client: RequestClient,
    options: { readonly protocolVersion?: number; readonly responseTopicPrefix?: string },
  ) {
    this.#client = client;
    this.#options = options;
  }

  /** What `MqttClient.request()` does; see there. */
  async request(
    topic: string,
    payload: string | Uint8Array,
    options: PublishOptions & { timeoutMs?: number },
  ): Promise<Message> {
    if ((this.#options.protocolVersion ?? 5) !== 5) {
      throw new MqttError(ReasonCode.ProtocolError, "Cannot make a request: response topics need MQTT 5");
    }
    const responseTopic = await this.#responseTopic(options.signal);
    const correlation = crypto.getRandomValues(new Uint8Array(16));
    const key = hex(correlation);
    const response = deferred<Message>();
    this.#waiting.set(key, response);
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
    const stop = onAbort(signal, response.reject);
    try {
      await this.#client.publish(topic, payload, {
        qos: options.qos ?? 1,
        retain: options.retain,
        signal,
        properties: { ...options.properties, responseTopic, correlationData: correlation },
      });
      return await response.promise;
    } finally {
      stop();
      this.#waiting.delete(key);
    }
  }

  async #responseTopic(signal?: AbortSignal): Promise<string> {
    if (this.#responses === undefined) {
      const topic = `${this.#options.responseTopicPrefix ?? "mqttx"}/${this.#client.clientId}/responses`;
      this.#responses = this.#client.subscribe(topic, { qos: 1, signal }).then((subscription) => {
        (async () => {
          for await (const message of subscription) {
            const data = message.properties.correlationData;
            if (data !== undefined) this.#waiting.get(hex(data))?.resolve(message);
          }
        })();
        return topic;
      });
      this.#responses.catch(() => this.#responses = undefined);
    }
    return await this.#responses;
  }
}
