/**
 * Checks made before anything is queued, so a bad call fails at once with a typed error.
 */
import { generate, type IPublishPacket } from "mqtt-packet";
import { isValidTopicFilter, isValidTopicName } from "../topic.js";
import { MqttInvalidTopicError, MqttUnsupportedError } from "./errors.js";
import type { ConnackInfo } from "./handshake.js";
import type { PublishOptions } from "./types.js";

/** Why a publish cannot be made (invalid topic, QoS or retain the broker refuses), or undefined. */
export function checkPublish(
  topic: string,
  opts: PublishOptions,
  connack: ConnackInfo | undefined,
): Error | undefined {
  // [MQTT-3.3.2-2] [MQTT-4.7.3-1] non-empty, no wildcards.
  if (!isValidTopicName(topic))
    return new MqttInvalidTopicError(
      `invalid topic name ${JSON.stringify(topic)}: it must be non-empty, without wildcards (+, #) or U+0000`,
    );
  const qos = opts.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2)
    return new MqttUnsupportedError(`QoS must be 0, 1 or 2, not ${qos}`);
  // [MQTT-3.2.2-11] no QoS above the broker's Maximum QoS.
  if (connack && qos > connack.maximumQoS)
    return new MqttUnsupportedError(
      `the broker accepts QoS up to ${connack.maximumQoS}; this publish asked for ${qos}`,
    );
  // [MQTT-3.2.2-14] no retained messages to a broker without them.
  if (connack && opts.retain && !connack.retainAvailable)
    return new MqttUnsupportedError("the broker does not support retained messages");
  return undefined;
}

/** Why a list of topic filters cannot be subscribed, or undefined. */
export function checkFilters(filters: string[]): Error | undefined {
  if (filters.length === 0) return new MqttInvalidTopicError("no topic filter to subscribe to");
  for (const f of filters)
    if (!isValidTopicFilter(f))
      return new MqttInvalidTopicError(
        `invalid topic filter ${JSON.stringify(f)}: # must be last and alone in its level, + alone in its level`,
      );
  return undefined;
}

/**
 * Why a PUBLISH is larger than the broker's Maximum Packet Size (MQTT 5.0 §3.2.2.3.6), or undefined.
 * [MQTT-3.1.2-24] the broker would have to drop it; better to say so now.
 */
export function checkPacketSize(
  packet: IPublishPacket,
  protocolVersion: 4 | 5,
  max: number | undefined,
): Error | undefined {
  if (max === undefined) return undefined;
  const size = generate({ ...packet, messageId: packet.qos > 0 ? 1 : undefined }, { protocolVersion }).length;
  if (size <= max) return undefined;
  return new MqttUnsupportedError(
    `the PUBLISH to ${packet.topic} would be ${size} bytes; the broker accepts packets up to ${max} bytes`,
  );
}
