#!/usr/bin/env bash
# Self-test of quinn-peer against itself on loopback (no other network).
# Usage: interop/quinn-peer/selftest.sh [path/to/quinn-peer]
# Builds the release binary if none is given and none exists. Ports 4433-4438 (override
# with QP_PORT_BASE). Prints one line per check and a final "N passed, N failed".
set -u
here="$(cd "$(dirname "$0")" && pwd)"
B="${1:-$here/target/release/quinn-peer}"
if [ ! -x "$B" ]; then
  cargo build --release --manifest-path "$here/Cargo.toml" || exit 1
fi
base="${QP_PORT_BASE:-4433}"
T="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
bad() { echo "FAIL - $1"; fail=$((fail + 1)); }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

mkdir -p "$T/www/sub" "$T/dl"
head -c 1024 /dev/urandom >"$T/www/file1k"
head -c 10485760 /dev/urandom >"$T/www/file10m"
echo inner >"$T/www/sub/inner.txt"
echo secret >"$T/outside.txt"
ln -s "$T/outside.txt" "$T/www/escape"
(cd "$T/www" && sha256sum file1k file10m) >"$T/sums"

# start_server NAME ARGS... : starts a server, waits for "listening on"
start_server() {
  local name="$1"; shift
  timeout 300 "$B" server --www "$T/www" "$@" >"$T/$name.out" 2>"$T/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^listening on ' "$T/$name.out" && return 0; sleep 0.05; done
  echo "server $name did not start:"; cat "$T/$name.err"; return 1
}
sums_ok() { (cd "$T/dl" && sha256sum -c --quiet "$T/sums"); }
client() { timeout 60 "$B" client --downloads "$T/dl" "$@"; }

start_server main --listen "127.0.0.1:$base" --cert-out "$T/cert.pem" || exit 1
start_server chacha --listen "127.0.0.1:$((base + 1))" --chacha20 || exit 1
start_server close --listen "127.0.0.1:$((base + 2))" --close-code 42 || exit 1
start_server retry --listen "127.0.0.1:$((base + 3))" --retry -v || exit 1
U="https://127.0.0.1:$base"

check "transfer (concurrent, --ca)" client --ca "$T/cert.pem" "$U/file1k" "$U/file10m"
check "transfer sha256" sums_ok
rm -f "$T"/dl/*
check "sequential, --server-name localhost" client --ca "$T/cert.pem" --server-name localhost --sequential "$U/file1k" "$U/file10m"
check "sequential sha256" sums_ok
check "wrong server name is refused" bash -c "! $B client --downloads $T/dl --ca $T/cert.pem --server-name example.com $U/file1k 2>/dev/null"
rm -f "$T"/dl/*
check "chacha20 client" client --insecure --chacha20 "$U/file1k" "$U/file10m"
check "chacha20 client sha256" sums_ok
rm -f "$T"/dl/*
check "chacha20-only server" client --insecure "https://127.0.0.1:$((base + 1))/file1k" "https://127.0.0.1:$((base + 1))/file10m"
check "chacha20-only server sha256" sums_ok
n=$(client --insecure -v --connections 4 "$U/file1k" "$U/file10m" 2>&1 | grep -c '^connected to')
check "multiconnect: 4 connections" test "$n" = 4
check "multiconnect sha256" sums_ok
out=$(client --insecure --wait-for-close "https://127.0.0.1:$((base + 2))/file1k")
check "close code observed ($out)" test "$out" = "closed by peer: code=42 reason=bye"
for p in /../outside.txt /sub/../../outside.txt /escape; do
  err=$(client --insecure "$U$p" 2>&1 >/dev/null)
  check "traversal $p refused (403)" grep -q 'with code 403' <<<"$err"
done
err=$(client --insecure "$U/nonexistent" 2>&1 >/dev/null)
check "404 reset" grep -q 'with code 404' <<<"$err"
check "refused requests leave no files" test ! -e "$T/dl/outside.txt" -a ! -e "$T/dl/escape" -a ! -e "$T/dl/nonexistent"
check "retry" client --insecure "https://127.0.0.1:$((base + 3))/file1k"
check "retry was sent" grep -q '^retry ->' "$T/retry.err"
check "unsupported testcase exits 127" bash -c "TESTCASE=http3 $B client --insecure $U/file1k; test \$? = 127"
for tc in resumption zerortt; do
  port=$((base + 4))
  [ "$tc" = zerortt ] && port=$((base + 5))
  start_server "$tc" --listen "127.0.0.1:$port" --testcase "$tc" --exit-after 2 || exit 1
  rm -f "$T"/dl/*
  err=$(client --insecure --testcase "$tc" "https://127.0.0.1:$port/file1k" "https://127.0.0.1:$port/file10m" 2>&1 >/dev/null)
  want=none
  [ "$tc" = zerortt ] && want=accepted
  check "$tc: client resumed (zero_rtt=$want)" grep -q "^connection 2: resumed=true zero_rtt=$want" <<<"$err"
  check "$tc sha256" sums_ok
  for _ in $(seq 100); do grep -q 'connections served as expected\|FAILED' "$T/$tc.err" && break; sleep 0.05; done
  check "$tc: server saw connection 2 resumed" grep -q "^connection 2: resumed=true zero_rtt=$want" "$T/$tc.err"
done
line=$(timeout 60 "$B" client --insecure --bench-bytes 104857600 "$U/bench/104857600")
echo "     $line"
check "bench 100 MB" grep -q '^bytes=104857600 seconds=' <<<"$line"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
