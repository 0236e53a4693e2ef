#!/usr/bin/env bash
# Thundering herd: many agents download the same new artifact at once (issue 18). One 30 MB
# artifact (a canonical-looking tar of random bytes, gzip -1, named by the sha256 of the tar)
# in a directory store, served on loopback to the same load generator, in one run:
#
#   nginx sendfile   Debian's nginx, the artifact's directory as root, sendfile on
#   nginx read/write the same with sendfile off (read into a buffer, write from it)
#   ferry memory     ferry-source-server (release), default --artifact-memory-budget: one
#                    shared in-memory copy
#   ferry file       ferry-source-server --artifact-memory-budget 0: 64 KiB reads per response
#
# Each: wrk -t1 -c$CONNS -d$SECS (one wrk thread: the machine has two cores, and the server
# needs them), throughput in GiB/s from the bytes wrk read, and the server's peak resident
# memory (VmHWM; nginx: master plus workers).
#
#   source-server/bench/herd/bench.sh      # CONNS=1000 SECS=20 SIZE_MB=30 by default
#   BENCH_KEEP=1 …                         # keep the work dir (logs, nginx config)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
HELPER="python3 $ROOT/applier/bench/helper.py"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
CONNS=${CONNS:-1000}
SECS=${SECS:-20}
SIZE_MB=${SIZE_MB:-30}
NGINX=${NGINX:-/usr/sbin/nginx}

WORK=$(mktemp -d /tmp/ferry-herd-bench.XXXXXX)
chmod 0755 "$WORK" # nginx workers run as another user when started by root
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "FAILED: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done; exit 1; }
wait_http() { for _ in $(seq 300); do curl -fsS -o /dev/null -r 0-0 "$1" 2>/dev/null && return; sleep 0.1; done; fail "$1 never answered"; }
hwm_kib() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }

# 1000 connections for the server and for wrk.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] || fail "open-file limit $(ulimit -n) below $CONNS connections"

if [ ! -x "$BIN/ferry-source-server" ] && [ -z "${BENCH_NO_BUILD:-}" ]; then
  echo "building ferry-source-server (release) …" >&2
  cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p ferry-source-server --bin ferry-source-server
fi

# --- the artifact -----------------------------------------------------------------------------
mkdir -p "$WORK/store/artifacts/sha256" "$WORK/payload"
head -c $((SIZE_MB * 1000 * 1000)) /dev/urandom > "$WORK/payload/blob.bin"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$WORK/payload" -cf "$WORK/artifact.tar" blob.bin
HEX=$(sha256sum "$WORK/artifact.tar" | cut -d' ' -f1)
TAR_BYTES=$(stat -c %s "$WORK/artifact.tar")
gzip -1 -n -c "$WORK/artifact.tar" > "$WORK/store/artifacts/sha256/$HEX.tar.gz"
rm -rf "$WORK/payload" "$WORK/artifact.tar"
GZ_BYTES=$(stat -c %s "$WORK/store/artifacts/sha256/$HEX.tar.gz")
PATH_=/v1/artifacts/sha256/$HEX
# A pointer record naming it, as a source server or bundle import writes one: the server's GC
# keeps every pointed-to artifact (no source in the config owns this one).
mkdir -p "$WORK/store/pointers/gitrepositories/bench"
printf '{"kind":"GitRepository","namespace":"bench","name":"herd","revision":"main@sha1:%s","digest":"sha256:%s","size":%d,"url":"%s"}\n' \
  "$(printf '0%.0s' $(seq 40))" "$HEX" "$TAR_BYTES" "http://127.0.0.1$PATH_" \
  > "$WORK/store/pointers/gitrepositories/bench/herd.json"

cat > "$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT bytes=%d us=%d requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.bytes, summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

RESULTS=()
# run NAME URL PID... : wrk against URL, then the servers' summed peak RSS.
run() {
  local name=$1 url=$2; shift 2
  wait_http "$url"
  local got
  got=$(curl -fsS "$url" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$(sha256sum "$WORK/store/artifacts/sha256/$HEX.tar.gz" | cut -d' ' -f1)" ] || fail "$name serves other bytes"
  echo "$name: wrk -t1 -c$CONNS -d${SECS}s --timeout 120s $url" >&2
  wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 120s -s "$WORK/report.lua" "$url" > "$WORK/wrk-$name.log" 2>&1 || fail "wrk against $name"
  local line hwm=0 pid
  line=$(grep '^RESULT' "$WORK/wrk-$name.log") || fail "no wrk summary for $name"
  for pid in "$@"; do hwm=$((hwm + $(hwm_kib "$pid"))); done
  RESULTS+=("$name $line hwm_kib=$hwm")
}

# --- nginx, sendfile on and off ---------------------------------------------------------------
nginx_conf() { # PORT SENDFILE
  cat > "$WORK/nginx-$2.conf" <<EOF
daemon off;
worker_processes auto;
worker_rlimit_nofile $((CONNS * 2 + 100));
pid $WORK/nginx-$2.pid;
error_log $WORK/nginx-$2.log warn;
events { worker_connections $((CONNS * 2 + 100)); }
http {
  access_log off;
  sendfile $2;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/gzip gz; }
  server {
    listen 127.0.0.1:$1;
    location /v1/artifacts/sha256/ {
      alias $WORK/store/artifacts/sha256/;
      try_files \$uri.tar.gz =404;
    }
  }
}
EOF
}
for sf in on off; do
  port=$($HELPER free-port)
  nginx_conf "$port" "$sf"
  "$NGINX" -c "$WORK/nginx-$sf.conf" -p "$WORK" > "$WORK/nginx-$sf.out.log" 2>&1 &
  master=$!
  PIDS+=("$master")
  wait_http "http://127.0.0.1:$port$PATH_"
  workers=$(pgrep -P "$master" | tr '\n' ' ')
  # shellcheck disable=SC2086
  run "nginx-sendfile-$sf" "http://127.0.0.1:$port$PATH_" "$master" $workers
  kill "$master"; wait "$master" 2>/dev/null || true
done

# --- ferry, shared copy in memory and per-response file reads ----------------------------------
: > "$WORK/sources.yaml"
for budget in default 0; do
  port=$($HELPER free-port)
  args=(serve --config "$WORK/sources.yaml" --storage "$WORK/store" --cache "$WORK/cache-$budget"
        --listen "127.0.0.1:$port")
  [ "$budget" = default ] || args+=(--artifact-memory-budget "$budget")
  "$BIN/ferry-source-server" "${args[@]}" > "$WORK/ferry-$budget.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  name=ferry-memory; [ "$budget" = default ] || name=ferry-file
  run "$name" "http://127.0.0.1:$port$PATH_" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# --- report -----------------------------------------------------------------------------------
echo
echo "artifact: $GZ_BYTES bytes gzip; wrk -t1 -c$CONNS -d${SECS}s; $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-20s %10s %9s %10s %13s %s\n' server GiB/s requests vs-sendfile peak-RSS-MiB errors
base=
for r in "${RESULTS[@]}"; do
  name=${r%% *}
  val() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<< "$r"; }
  gibs=$(awk -v b="$(val bytes)" -v us="$(val us)" 'BEGIN { printf "%.2f", b / (us / 1e6) / 2^30 }')
  [ -n "$base" ] || base=$gibs
  errs="read=$(val read) write=$(val write) status=$(val status) timeout=$(val timeout)"
  printf '%-20s %10s %9s %9s%% %13s %s\n' "$name" "$gibs" "$(val requests)" \
    "$(awk -v a="$gibs" -v b="$base" 'BEGIN { printf "%.0f", a / b * 100 }')" \
    "$(awk -v k="$(val hwm_kib)" 'BEGIN { printf "%.1f", k / 1024 }')" "$errs"
done
