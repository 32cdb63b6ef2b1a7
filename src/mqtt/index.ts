/**
 * `mquictt/mqtt`: MQTT over QUIC and TCP. The client (`connect`, `MqttClient`, publishers,
 * subscribers), the broker (`Broker`), topic helpers and MQTT reason codes.
 */
export { Broker } from "./broker/broker.js";
export type { BrokerOptions } from "./broker/options.js";
export * from "./client/index.js";
export { MqttError, ReasonCode, type ReasonCodeName } from "./errors.js";
export {
  isValidTopicFilter,
  isValidTopicName,
  parseSharedFilter,
  type SharedFilter,
  topicMatches,
} from "./topic.js";
