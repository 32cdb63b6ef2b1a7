#!/usr/bin/env bash
# Builds the flowsdk interop client (EMQ's flowsdk 0.7.0, feature `quic` only: quinn/quinn-proto on
# rustls + ring, no OpenSSL) for test/interop/flowsdk.test.ts:
#   interop/flowsdk-client/target/release/flowsdk-client   (or $CARGO_TARGET_DIR/release/...)
# Versions are pinned by Cargo.toml (flowsdk = "=0.7.0") and Cargo.lock (built --locked).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
start=$(date +%s)
cargo build --release --locked --manifest-path "$here/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$here/target}/release/flowsdk-client"
echo "flowsdk-client built at $bin in $(( $(date +%s) - start )) s"
