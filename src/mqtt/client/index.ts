/**
 * The MQTT client: `connect()` / `createClient()`, `MqttClient`, publishers, subscribers, the
 * session store interface and the client's typed errors.
 */
export type { ReconnectOptions } from "./backoff.js";
export type { ChannelKind } from "./channel.js";
export { type Callback, connect, createClient, MqttClient, type MqttClientEvents } from "./client.js";
export type { ClientTransport, Dialer, DialOptions, MigrateOptions } from "./dial.js";
export { ALPN_MQTT, ALPN_MQTT_NEXT, defaultDialer, dialQuic, dialTcp, dialTls } from "./dial.js";
export {
  MqttAckError,
  MqttClientClosedError,
  MqttClosedHandleError,
  MqttConnackError,
  MqttConnectionError,
  MqttConnectTimeoutError,
  MqttInvalidTopicError,
  MqttKeepaliveTimeoutError,
  MqttNotConnectedError,
  MqttOfflineQueueFullError,
  MqttProtocolError,
  MqttServerDisconnectError,
  MqttStreamRefusedError,
  MqttUnsupportedError,
  MqttUrlError,
} from "./errors.js";
export type { ConnackInfo } from "./handshake.js";
export type { ConnectOptions, QuicDataStreams, StreamMode, WillOptions } from "./options.js";
export { Publisher } from "./publisher.js";
export { formatReasonCode, REASON_CODE_NAMES, reasonCodeName } from "./reason-codes.js";
export {
  type ClientSessionStore,
  MemoryClientSessionStore,
  type SessionSnapshot,
  type StoredPublish,
} from "./session-store.js";
export { Subscriber } from "./subscriber.js";
export type { ClientScheduler, ClientTimerHandle } from "./timers.js";
export type {
  MqttMessage,
  Payload,
  PublishOptions,
  PublishProperties,
  PublishResult,
  QoS,
  SubscribeOptions,
  SubscriberOptions,
  SubscriptionGrant,
} from "./types.js";
export { type BrokerAddress, DEFAULT_PORTS, parseBrokerUrl } from "./url.js";
