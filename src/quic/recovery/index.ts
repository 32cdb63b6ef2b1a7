/**
 * Loss recovery building blocks (RFC 9002; RFC 9000 §13.2): packet number spaces, RTT
 * estimation, receive-side ACK tracking, sent-packet tracking with recovery tokens, loss
 * detection and PTO, NewReno congestion control, and pacing. All sans-IO: `now` is passed in.
 */
export * from "./ack-tracker.js";
export * from "./congestion.js";
export * from "./loss.js";
export * from "./pacer.js";
export * from "./range-set.js";
export * from "./rtt.js";
export * from "./sent-packets.js";
export * from "./space.js";
