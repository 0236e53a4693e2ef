#!/usr/bin/env bash
# Applier benchmark (issue 5, "Performance"): the real binaries, release builds, on this machine.
#
#   applier/bench/run.sh [configmaps] [deployments]        (default 700 + 300 = 1000 objects)
#
# Starts ferry-testcluster (in-memory API server), ferry-source-server (a GitRepository on a
# generated file:// repo) and `ferry-applier run` for namespace bench-agent, then measures:
#   a. first apply of all objects: agent (Kustomization created by one POST → the watch event
#      with Ready=True and lastAppliedRevision) vs `kubectl apply --server-side` (the whole
#      kubectl process) of the same rendered YAML (`ferry-applier build`) into the fresh
#      namespace bench-kubectl of the same server.
#      kubectl runs first, so the agent meets the larger store; the agent starts once the test
#      server's workload stand-in has written the status of kubectl's Deployments.
#      Target: agent ≥ 5× faster.
#   b. CPU of a reconcile with nothing changed: the Kustomization's interval (BENCH_INTERVAL,
#      default 10s) triggers it. The agent's CPU (utime+stime from /proc/PID/stat, and the exact
#      sum of its threads' schedstat run time) is sampled right after one interval reconcile
#      logs "applied" and again after BENCH_RECONCILES more; the per-reconcile value is
#      delta / reconciles, minus the idle CPU of the same wall time (sampled over a quiet
#      window with no Kustomization). The first interval reconcile is a warm-up and not counted.
#      Target ≤ 50 ms.
#   c. RSS: idle (agent up 5 s, connected, no Kustomization) and with the objects inventoried
#      (after the measured reconciles): VmRSS and VmHWM from /proc/PID/status.
#      Targets ≤ 15 MiB idle, ≤ 40 MiB with 1000 objects.
#
# Env: CARGO_TARGET_DIR (default <repo>/target), BENCH_NO_BUILD=1 (use existing binaries),
# BENCH_BIN_DIR (where the binaries are; default $CARGO_TARGET_DIR/release; implies no build),
# FERRY_KUBECTL (default <repo>/.tools/bin/kubectl), BENCH_INTERVAL, BENCH_RECONCILES (3),
# BENCH_MALLOC_CONF (default: the MALLOC_CONF deploy/agent sets; empty = jemalloc's defaults),
# BENCH_KEEP=1 (keep the work dir with all logs), BENCH_PERF=1 (perf record the agent during
# the no-change reconciles; report in the work dir, implies BENCH_KEEP).
set -euo pipefail
N_CM=${1:-700}
N_DEP=${2:-300}
N=$((N_CM + N_DEP))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELPER="python3 $ROOT/applier/bench/helper.py"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN_DIR:-$CARGO_TARGET_DIR/release}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
INTERVAL=${BENCH_INTERVAL:-10s}
RECONCILES=${BENCH_RECONCILES:-3}
[ -n "${BENCH_PERF:-}" ] && BENCH_KEEP=1
NS_AGENT=bench-agent
NS_KUBECTL=bench-kubectl

[ -x "$KUBECTL" ] || { echo "kubectl not found at $KUBECTL: run tests/scripts/install-tools.sh or set FERRY_KUBECTL" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ferry-applier-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  # Newest first: the agent stops before the servers it talks to.
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then
    echo "work dir kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAILED: $*" >&2
  for f in "$WORK"/*.log; do echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
now_ns() { date +%s%N; }
ms() { python3 -c "print(f'{($2 - $1) / 1e6:.0f}')" "$@"; }
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }

if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
  echo "building release binaries in $CARGO_TARGET_DIR …" >&2
  cargo build -q --release --manifest-path "$ROOT/Cargo.toml" \
    -p ferry-applier -p ferry-tests -p ferry-source-server \
    --bin ferry-applier --bin ferry-testcluster --bin ferry-source-server
fi
for b in ferry-applier ferry-testcluster ferry-source-server; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b missing (unset BENCH_NO_BUILD to build it)" >&2; exit 1; }
done

# --- the Git repository --------------------------------------------------------------------
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ferry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ferry.invalid
echo "generating $N_CM ConfigMaps + $N_DEP Deployments …" >&2
git init -q -b main "$WORK/repo"
$HELPER gen "$WORK/repo" "$N_CM" "$N_DEP"
git -C "$WORK/repo" add -A
git -C "$WORK/repo" commit -q -m "bench: $N objects"
"$BIN/ferry-applier" build "$WORK/repo/apps" > "$WORK/rendered.yaml" 2> "$WORK/build.log" \
  || fail "ferry-applier build"
RENDERED=$(grep -c '^kind:' "$WORK/rendered.yaml" || true)
[ "$RENDERED" -eq "$N" ] || fail "rendered $RENDERED objects, expected $N"

# --- test API server, CRD, namespaces -----------------------------------------------------
"$BIN/ferry-testcluster" --listen 127.0.0.1:0 --kubeconfig-out "$WORK/kubeconfig" \
  > "$WORK/testcluster.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/kubeconfig" ] && break; sleep 0.1; done
[ -s "$WORK/kubeconfig" ] || fail "ferry-testcluster wrote no kubeconfig"
k apply -f "$ROOT/deploy/crds/apply.ferry.dev_kustomizations.yaml" > /dev/null
k create namespace "$NS_AGENT" > /dev/null
k create namespace "$NS_KUBECTL" > /dev/null
k get --raw /apis > /dev/null # kubectl's discovery cache is warm for the timed apply

# --- source server -------------------------------------------------------------------------
SRC_PORT=$($HELPER free-port)
SRC_URL=http://127.0.0.1:$SRC_PORT
cat > "$WORK/sources.yaml" <<EOF
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata:
  name: bench
  namespace: $NS_AGENT
spec:
  url: file://$WORK/repo
  interval: 10m
  ref:
    branch: main
EOF
"$BIN/ferry-source-server" serve --config "$WORK/sources.yaml" --storage "$WORK/storage" \
  --cache "$WORK/mirrors" --listen "127.0.0.1:$SRC_PORT" > "$WORK/source-server.log" 2>&1 &
PIDS+=($!)
REVISION=$($HELPER wait-artifact "$SRC_URL" "$NS_AGENT" bench 60) || fail "source server artifact"
echo "artifact ready: $REVISION" >&2

METRICS_PORT=$($HELPER free-port)
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
# --- agent, idle ---------------------------------------------------------------------------
# The environment deploy/agent/deployment.yaml gives the agent (BENCH_MALLOC_CONF= to measure
# without it).
DEPLOY_MALLOC_CONF=$(grep -A1 'name: MALLOC_CONF' "$ROOT/deploy/agent/deployment.yaml" | sed -n 's/.*value: *//p')
MALLOC_CONF=${BENCH_MALLOC_CONF-$DEPLOY_MALLOC_CONF} \
"$BIN/ferry-applier" run --namespace "$NS_AGENT" --source-server "$SRC_URL" \
  --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/agent-cache" --log-format json \
  --metrics-addr "127.0.0.1:$METRICS_PORT" \
  > "$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
sleep 5
kill -0 $AGENT 2>/dev/null || fail "agent exited"
read -r _ _ IDLE_RSS IDLE_HWM < <($HELPER proc $AGENT)
# Idle CPU rate, to subtract from the reconcile measurement (watch + event stream keep-alives).
read -r T0 NS0 _ _ < <($HELPER proc $AGENT); W0=$(now_ns)
sleep 5
read -r T1 NS1 _ _ < <($HELPER proc $AGENT); W1=$(now_ns)
echo "agent idle: RSS $IDLE_RSS KiB" >&2

# --- a. first apply ------------------------------------------------------------------------
echo "kubectl apply --server-side of $N objects …" >&2
t=$(now_ns)
k apply --server-side -n "$NS_KUBECTL" -f "$WORK/rendered.yaml" > "$WORK/kubectl-apply.log" 2>&1 \
  || fail "kubectl apply --server-side"
KUBECTL_MS=$(ms "$t" "$(now_ns)")
GOT=$($HELPER count-objects "$WORK/kubeconfig" "$NS_KUBECTL")
[ "$GOT" -eq "$N" ] || fail "kubectl applied $GOT objects, expected $N"
# The test server's workload stand-in writes the status of kubectl's Deployments 300 ms after
# each was created; let it finish, so the agent's measurement does not share the server.
$HELPER wait-settled "$WORK/kubeconfig" "$NS_KUBECTL" 60 || fail "kubectl's Deployments never settled"

echo "agent first apply of $N objects …" >&2
read -r t READY_AT APPLIED_REV < <($HELPER create-ready "$WORK/kubeconfig" "$NS_AGENT" bench bench \
  "$INTERVAL" 600) || fail "agent first apply"
AGENT_MS=$(ms "$t" "$READY_AT")
read -r FETCH_MS APPLY_MS < <($HELPER phases "$WORK/agent.log" "$t")
GOT=$($HELPER count-objects "$WORK/kubeconfig" "$NS_AGENT")
[ "$GOT" -eq "$N" ] || fail "agent applied $GOT objects, expected $N"
RATIO=$(python3 -c "print(f'{$KUBECTL_MS / max($AGENT_MS, 1):.2f}')")

# --- b. no-change reconciles (interval) ----------------------------------------------------
APPLIED='"message":"applied"'
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" 1 60 > /dev/null || fail "no 'applied' log line"
echo "waiting for interval reconciles ($INTERVAL each) …" >&2
# Warm-up: the first interval reconcile.
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" 2 120 > /dev/null || fail "no interval reconcile"
M0=$($HELPER reconcile-seconds "$METRICS_URL") # scraped outside the CPU window
read -r C0 N0 _ _ < <($HELPER proc $AGENT); R0=$(now_ns)
if [ -n "${BENCH_PERF:-}" ]; then
  perf record -q -g -p $AGENT -o "$WORK/perf.data" > "$WORK/perf.log" 2>&1 &
  PERF=$!
  PIDS+=($PERF)
fi
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" $((2 + RECONCILES)) 300 > /dev/null \
  || fail "interval reconciles"
read -r C1 N1 RSS HWM < <($HELPER proc $AGENT); R1=$(now_ns)
if [ -n "${BENCH_PERF:-}" ]; then
  kill -INT $PERF; wait $PERF || true
  perf report -i "$WORK/perf.data" --no-children --percent-limit 1.5 --stdio \
    > "$WORK/perf-report.txt" 2>/dev/null || true
fi
grep "$APPLIED" "$WORK/agent.log" | tail -n 1 | grep -q "$N unchanged" \
  || fail "the last reconcile did not report $N unchanged: $(grep "$APPLIED" "$WORK/agent.log" | tail -n 1)"
read -r CPU_TICKS_MS CPU_NS_MS IDLE_MS < <(python3 - <<EOF
hz = $(getconf CLK_TCK)
idle_rate = ($NS1 - $NS0) / ($W1 - $W0)          # CPU ns per wall ns while idle
window = $R1 - $R0
idle = idle_rate * window
print(f"{(($C1 - $C0) * 1000 / hz - idle / 1e6) / $RECONCILES:.1f}",
      f"{(($N1 - $N0) - idle) / 1e6 / $RECONCILES:.1f}",
      f"{idle / 1e6 / $RECONCILES:.1f}")
EOF
)
M1=$($HELPER reconcile-seconds "$METRICS_URL")
RECONCILE_MS=$(python3 -c "s0,c0='$M0'.split(); s1,c1='$M1'.split(); print(f'{(float(s1)-float(s0))*1000/max(float(c1)-float(c0),1):.0f}')")

# --- report --------------------------------------------------------------------------------
mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
verdict() { python3 -c "print('ok' if $1 else 'MISSED')"; }
echo
echo "Ferry applier benchmark: $N objects ($N_CM ConfigMaps + $N_DEP Deployments), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %12s %10s %s\n' "measure" "value" "target" "verdict"
printf '%-58s %12s %10s\n' "a. kubectl apply --server-side, first apply (ms)" "$KUBECTL_MS" ""
printf '%-58s %12s %10s\n' "a. agent first apply, Kustomization → Ready (ms)" "$AGENT_MS" ""
printf '%-58s %12s %10s\n' "a.   of which: until the artifact was fetched (agent log)" "$FETCH_MS" ""
printf '%-58s %12s %10s\n' "a.   of which: until the 'applied' log line (agent log)" "$APPLY_MS" ""
printf '%-58s %12s %10s %s\n' "a. speed-up kubectl / agent (×)" "$RATIO" "≥ 5" "$(verdict "$RATIO >= 5")"
printf '%-58s %12s %10s\n' "b. no-change reconcile wall time (agent metric, ms)" "$RECONCILE_MS" ""
printf '%-58s %12s %10s %s\n' "b. no-change reconcile CPU, utime+stime (ms)" "$CPU_TICKS_MS" "≤ 50" "$(verdict "$CPU_TICKS_MS <= 50")"
printf '%-58s %12s %10s %s\n' "b. no-change reconcile CPU, schedstat (ms)" "$CPU_NS_MS" "≤ 50" "$(verdict "$CPU_NS_MS <= 50")"
printf '%-58s %12s %10s\n' "b.   (idle CPU subtracted per reconcile, ms)" "$IDLE_MS" ""
printf '%-58s %12s %10s %s\n' "c. RSS idle, VmRSS (MiB)" "$(mib "$IDLE_RSS")" "≤ 15" "$(verdict "$IDLE_RSS <= 15 * 1024")"
printf '%-58s %12s %10s\n' "c. RSS idle, VmHWM (MiB)" "$(mib "$IDLE_HWM")" ""
printf '%-58s %12s %10s %s\n' "c. RSS with $N inventoried objects, VmRSS (MiB)" "$(mib "$RSS")" "≤ 40" "$(verdict "$RSS <= 40 * 1024")"
printf '%-58s %12s %10s %s\n' "c. peak RSS (first apply + reconciles), VmHWM (MiB)" "$(mib "$HWM")" "≤ 40" "$(verdict "$HWM <= 40 * 1024")"
echo "revision: $APPLIED_REV; no-change reconciles measured: $RECONCILES (interval $INTERVAL)"
[ -n "${BENCH_PERF:-}" ] && echo "perf report: $WORK/perf-report.txt"
exit 0
