#!/bin/sh
# Builds the packet-level link emulator's C programs from this directory's sources, with the
# machine's C compiler and nothing else (no packages, no downloads). Prints the output directory.
#   bench/netem/build.sh [OUT_DIR]     (default: node_modules/.cache/mquictt-netem)
# Used by bench/netem/link.ts on demand (when a binary is missing or older than its source).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../node_modules/.cache/mquictt-netem"}
cc=${CC:-cc}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for prog in forwarder blast; do
  # build to a temporary name and rename, so concurrent builds never expose a half-written binary
  tmp="$out/.netem-$prog.$$"
  "$cc" -O2 -Wall -Wextra -o "$tmp" "$here/$prog.c" -lm
  mv -f "$tmp" "$out/netem-$prog"
done
echo "$out"
