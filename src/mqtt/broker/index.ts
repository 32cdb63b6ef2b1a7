/**
 * The MQTT broker: public API.
 *
 * ```ts
 * import { Broker } from "mquictt/mqtt/broker"; // (or from the package root once exported there)
 * const broker = new Broker({ authenticate: ({ username, password }) => check(username, password) });
 * await broker.listenTcp({ port: 1883 });
 * broker.handle(quicTransport); // any MqttTransport
 * ```
 */
export {
  Broker,
  type BrokerEvents,
  type BrokerMetrics,
  type DropInfo,
  type PublishOptions,
} from "./broker.js";
export type { DisconnectInfo } from "./connection.js";
export {
  decodeFlowHeader,
  encodeFlowHeader,
  type FlowHeader,
  type FlowHeaderResult,
  FlowType,
  isFlowHeaderStart,
} from "./flow-header.js";
export {
  type AuthenticateContext,
  type BrokerOptions,
  type ClientInfo,
  type HookResult,
  NEVER_EXPIRES,
  type TransportInfo,
} from "./options.js";
export { ManualScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
export type { DropReason } from "./session.js";
export {
  type AppMessage,
  type Awaitable,
  MemoryRetainedStore,
  MemorySessionStore,
  type MessageProperties,
  newSessionState,
  type OutboundRecord,
  type RetainedStore,
  type SessionState,
  type SessionStore,
  type SubscriptionRecord,
  type WillRecord,
} from "./store.js";
export type { StreamKind } from "./stream-state.js";
