/**
 * The flow header codec lives in `src/mqtt/flow-header.ts`, shared by the broker (client-opened
 * streams) and the client (server-opened streams); re-exported here for existing imports.
 */
export * from "../flow-header.js";
