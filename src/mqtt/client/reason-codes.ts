/**
 * MQTT reason codes (MQTT 5.0 §2.4) and the MQTT 3.1.1 CONNACK return codes, with the names the
 * specifications give them, so errors can say "0x87 Not authorized" instead of a bare number.
 */

/** MQTT 5.0 reason code names (§2.4, Table 2-6). Codes below 0x80 are successes. */
export const REASON_CODE_NAMES: Readonly<Record<number, string>> = {
  0: "Success",
  1: "Granted QoS 1",
  2: "Granted QoS 2",
  4: "Disconnect with Will Message",
  16: "No matching subscribers",
  17: "No subscription existed",
  24: "Continue authentication",
  25: "Re-authenticate",
  128: "Unspecified error",
  129: "Malformed Packet",
  130: "Protocol Error",
  131: "Implementation specific error",
  132: "Unsupported Protocol Version",
  133: "Client Identifier not valid",
  134: "Bad User Name or Password",
  135: "Not authorized",
  136: "Server unavailable",
  137: "Server busy",
  138: "Banned",
  139: "Server shutting down",
  140: "Bad authentication method",
  141: "Keep Alive timeout",
  142: "Session taken over",
  143: "Topic Filter invalid",
  144: "Topic Name invalid",
  145: "Packet Identifier in use",
  146: "Packet Identifier not found",
  147: "Receive Maximum exceeded",
  148: "Topic Alias invalid",
  149: "Packet too large",
  150: "Message rate too high",
  151: "Quota exceeded",
  152: "Administrative action",
  153: "Payload format invalid",
  154: "Retain not supported",
  155: "QoS not supported",
  156: "Use another server",
  157: "Server moved",
  158: "Shared Subscriptions not supported",
  159: "Connection rate exceeded",
  160: "Maximum connect time",
  161: "Subscription Identifiers not supported",
  162: "Wildcard Subscriptions not supported",
};

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3) mapped to their MQTT 5.0 equivalents. */
export const V4_CONNACK_TO_V5: Readonly<Record<number, number>> = {
  0: 0x00,
  1: 0x84, // unacceptable protocol version
  2: 0x85, // identifier rejected
  3: 0x88, // server unavailable
  4: 0x86, // bad user name or password
  5: 0x87, // not authorized
};

/** The name of a reason code, or "Unknown reason code" for a value the spec does not define. */
export function reasonCodeName(code: number): string {
  return REASON_CODE_NAMES[code] ?? "Unknown reason code";
}

/** `0x87 Not authorized`: a reason code in hex with its name. */
export function formatReasonCode(code: number): string {
  return `0x${code.toString(16).padStart(2, "0")} ${reasonCodeName(code)}`;
}

/**
 * CONNACK refusals worth retrying later (the broker is overloaded or restarting); every other
 * refusal (bad credentials, banned, bad protocol version...) will not change by retrying.
 */
export function isTransientConnackCode(code: number): boolean {
  return code === 0x88 || code === 0x89 || code === 0x8b || code === 0x97 || code === 0x9f;
}
