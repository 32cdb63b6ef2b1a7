/**
 * Public value types of the client API.
 */
import type { IPublishPacket, QoS, UserProperties } from "mqtt-packet";
import type { PublishProperties } from "./session-store.js";

export type { PublishProperties, QoS, UserProperties };

/** Options of a publish. */
export interface PublishOptions {
  /** Quality of service (default 0). */
  qos?: QoS;
  /** Ask the broker to keep the message as the topic's retained message (default false). */
  retain?: boolean;
  /** MQTT 5.0 properties (ignored on 3.1.1). */
  properties?: PublishProperties;
}

/** The broker's answer to a QoS 1 (PUBACK) or QoS 2 (PUBCOMP) publish. */
export interface PublishResult {
  /** The packet identifier the message used. */
  messageId: number;
  /**
   * The reason code of the PUBACK or PUBCOMP (0 on MQTT 3.1.1). 0x92 from PUBCOMP means the broker
   * had already completed the flow when our PUBREL was resent after a reconnect: still delivered.
   */
  reasonCode: number;
}

/** Options of one subscription. */
export interface SubscribeOptions {
  /** Maximum QoS of deliveries (default 0). */
  qos?: QoS;
  /** MQTT 5.0 No Local: do not receive our own publishes. */
  nl?: boolean;
  /** MQTT 5.0 Retain As Published. */
  rap?: boolean;
  /** MQTT 5.0 Retain Handling (0 send retained, 1 only for a new subscription, 2 never). */
  rh?: 0 | 1 | 2;
  /** MQTT 5.0 user properties of the SUBSCRIBE. */
  properties?: { userProperties?: UserProperties };
}

/** Options of `client.subscriber()`. */
export interface SubscriberOptions extends SubscribeOptions {
  /**
   * Messages buffered before the subscriber's own stream stops being read, so the broker is held
   * back on this subscription alone (default 1000; reading resumes at half).
   */
  highWaterMark?: number;
}

/** One granted subscription, as MQTT.js reports it. */
export interface SubscriptionGrant {
  topic: string;
  /** The granted QoS, or a failure reason code (0x80 and above). */
  qos: number;
}

/** A message delivered by the broker. */
export interface MqttMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** MQTT 5.0 properties (subscription identifiers, user properties, content type...). */
  properties: IPublishPacket["properties"];
  /** The PUBLISH packet as parsed. */
  packet: IPublishPacket;
}

/** Payloads the client accepts. */
export type Payload = string | Uint8Array;
