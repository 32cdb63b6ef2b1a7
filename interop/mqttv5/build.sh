#!/usr/bin/env bash
# Builds the `mqttv5` command-line tool (crate mqttv5-cli, quinn-based MQTT over QUIC, ALPN `mqtt`)
# into interop/mqttv5/.bin/bin/mqttv5 for the QUIC interop tests (test/interop/mqttv5.test.ts).
#
# The crate version is pinned. Not `--locked`: the crate's own Cargo.lock pins webpki-roots 1.0.11,
# which the registry reachable here does not serve (it has up to 1.0.10), so `--locked` fails to
# resolve; cargo picks the newest semver-compatible dependencies instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="0.29.10"
bin="$here/.bin/bin/mqttv5"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "mqttv5 $version already built at $bin"
  exit 0
fi
cargo install --root "$here/.bin" mqttv5-cli --version "$version"
"$bin" --version
