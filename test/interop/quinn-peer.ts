/** The quinn interop peer helpers live in bench/lib (the benchmarks use them too). */
export * from "../../bench/lib/quinn-peer.js";
