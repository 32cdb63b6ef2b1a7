import { defineConfig } from "vitest/config";

/**
 * The broker's feature suites (raw MQTT clients through test/mqtt/broker/helpers.ts) run three
 * times: in memory (with the rest of the tests), and again over real loopback QUIC and real
 * loopback TCP to the broker's own listeners, so every feature is tested on each network.
 */
const BROKER_FEATURES = [
  "bad-input",
  "connect",
  "exactly-once",
  "keepalive",
  "limits",
  "qos",
  "retain",
  "session",
  "topics",
  "v5-message-expiry",
  "v5-no-local",
  "v5-packet-size",
  "v5-properties",
  "v5-receive-maximum",
  "v5-shared-subscriptions",
  "v5-subscription-identifiers",
  "v5-topic-alias",
  "will",
].map((f) => `test/mqtt/broker/${f}.test.ts`);

export default defineConfig({
  test: {
    testTimeout: 30_000,
    pool: "forks",
    projects: [
      { extends: true, test: { name: "all", include: ["test/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "broker-over-quic",
          include: BROKER_FEATURES,
          env: { MQUICTT_BROKER_TRANSPORT: "quic" },
        },
      },
      {
        extends: true,
        test: { name: "broker-over-tcp", include: BROKER_FEATURES, env: { MQUICTT_BROKER_TRANSPORT: "tcp" } },
      },
    ],
  },
});
