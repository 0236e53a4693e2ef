#!/usr/bin/env bash
# Applier benchmark (issue 5, "Performance"): the real binaries, release builds, on this machine.
#
#   applier/bench/run.sh [configmaps] [deployments]        (default 700 + 300 = 1000 objects)
#
# Starts ferry-testcluster (in-memory API server) — or, with BENCH_CLUSTER=real, the real
# control plane (tests/scripts/real-cluster.sh start: etcd, kube-apiserver,
# kube-controller-manager) —, ferry-source-server (a GitRepository on a generated file:// repo)
# and `ferry-applier run` for namespace bench-agent, then measures:
#   a. first apply of all objects: agent (Kustomization created by one POST → the watch event
#      with Ready=True and lastAppliedRevision) vs `kubectl apply --server-side` (the whole
#      kubectl process) of the same rendered YAML (`ferry-applier build`), each into a fresh
#      namespace of the same server; BENCH_ROUNDS rounds (default 5), each a fresh agent process
#      for a fresh namespace, medians reported. Target: agent ≥ 5× faster.
#      On the real control plane also the limit: the same applies from a minimal client
#      (applier/bench/limit, Go standard library: PATCH application/apply-patch+yaml, N in
#      flight) into another fresh namespace; N (and HTTP/2 vs HTTP/1.1) is the best of a sweep
#      over BENCH_LIMIT_N (default "4 16 32 64", HTTP/2) and BENCH_LIMIT_N1 ("16 64", HTTP/1.1)
#      before the rounds (BENCH_LIMIT_BEST=32/h2 skips the sweep); each round then measures the
#      limit too, before kubectl, between kubectl and the agent, or last, in turn. Reported:
#      agent time ÷ limit. Deployments are applied without waiting for them (no nodes: `wait` is
#      off, as in every round here), and each namespace is left to the controllers
#      (ReplicaSets, Pods) until they are done before the next measurement.
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
# Env: BENCH_CLUSTER (test | real; real needs `tests/scripts/real-cluster.sh build` and Go),
# BENCH_LIMIT_N, CARGO_TARGET_DIR (default <repo>/target), BENCH_NO_BUILD=1 (use existing binaries),
# BENCH_BIN_DIR (where the binaries are; default $CARGO_TARGET_DIR/release; implies no build),
# FERRY_KUBECTL (default <repo>/.tools/bin/kubectl), BENCH_INTERVAL, BENCH_RECONCILES (3),
# BENCH_ROUNDS (5; 3 on the real control plane, where each namespace's 600 Pods take the
# controller manager ~1 min at its default 20 requests/s),
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
ROUNDS=${BENCH_ROUNDS:-5}
[ "${BENCH_CLUSTER:-test}" = real ] && ROUNDS=${BENCH_ROUNDS:-3}
[ -n "${BENCH_PERF:-}" ] && BENCH_KEEP=1
NS_AGENT=bench-agent
NS_KUBECTL=bench-kubectl
NS_LIMIT=bench-limit
CLUSTER=${BENCH_CLUSTER:-test}
case $CLUSTER in test | real) ;; *) echo "BENCH_CLUSTER must be test or real, not $CLUSTER" >&2; exit 2 ;; esac
LIMIT_N=${BENCH_LIMIT_N:-4 16 32 64}
LIMIT_N1=${BENCH_LIMIT_N1:-16 64}
SETTLE=60
[ "$CLUSTER" = real ] && SETTLE=300

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
  [ "$CLUSTER" = real ] && [ -d "$WORK/cluster" ] && "$ROOT/tests/scripts/real-cluster.sh" stop "$WORK/cluster"
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
    -p ferry-applier -p ferry-testcluster -p ferry-source-server \
    --bin ferry-applier --bin ferry-testcluster --bin ferry-source-server
fi
NEEDED="ferry-applier ferry-source-server"
[ "$CLUSTER" = test ] && NEEDED="$NEEDED ferry-testcluster"
for b in $NEEDED; do
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

# --- API server, CRD, namespaces ----------------------------------------------------------
if [ "$CLUSTER" = real ]; then
  echo "starting the real control plane …" >&2
  "$ROOT/tests/scripts/real-cluster.sh" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 \
    || fail "real-cluster.sh start: $(tail -n 5 "$WORK/real-cluster.log")"
  cp "$WORK/cluster/kubeconfig" "$WORK/kubeconfig"
else
  "$BIN/ferry-testcluster" --listen 127.0.0.1:0 --kubeconfig-out "$WORK/kubeconfig" \
    > "$WORK/testcluster.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/kubeconfig" ] && break; sleep 0.1; done
  [ -s "$WORK/kubeconfig" ] || fail "ferry-testcluster wrote no kubeconfig"
fi
k apply -f "$ROOT/deploy/crds/apply.ferry.dev_kustomizations.yaml" > /dev/null
k wait --for condition=established --timeout 60s crd/kustomizations.apply.ferry.dev > /dev/null
k create namespace "$NS_AGENT" > /dev/null
k create namespace "$NS_KUBECTL" > /dev/null
k get --raw /apis > /dev/null # kubectl's discovery cache is warm for the timed apply

# --- the limit's client and its sweep ------------------------------------------------------
LIMIT_ALL=()
if [ "$CLUSTER" = real ]; then
  (cd "$ROOT/applier/bench/limit" && GOFLAGS=-mod=mod go build -o "$WORK/limit" .) || fail "go build limit"
  k create --dry-run=client -o json -f "$WORK/rendered.yaml" > "$WORK/objects.json" || fail "kubectl -o json"
  LIMIT_SERVER=$($HELPER kube-pem "$WORK/kubeconfig" "$WORK/pem") || fail "kube-pem"
  limit() { # NS N [-http1] → ms
    "$WORK/limit" -server "$LIMIT_SERVER" -ca "$WORK/pem/ca.crt" -cert "$WORK/pem/client.crt" \
      -key "$WORK/pem/client.key" -objects "$WORK/objects.json" -namespace "$1" -n "$2" ${3:-}
  }
  SWEEP=()
  for cfg in ${BENCH_LIMIT_BEST:-$(for n in $LIMIT_N; do echo "$n/h2"; done) $(for n in $LIMIT_N1; do echo "$n/h1"; done)}; do
    n=${cfg%/*}
    ns="$NS_LIMIT-sweep-$n-${cfg#*/}"
    k create namespace "$ns" > /dev/null
    ms_=$(limit "$ns" "$n" "$([ "${cfg#*/}" = h1 ] && echo -http1)") || fail "limit $cfg"
    got=$($HELPER count-objects "$WORK/kubeconfig" "$ns")
    [ "$got" -eq "$N" ] || fail "limit applied $got objects, expected $N"
    $HELPER wait-settled "$WORK/kubeconfig" "$ns" $SETTLE || fail "Deployments in $ns never settled"
    echo "limit sweep: N=$n ${cfg#*/}: $ms_ ms" >&2
    SWEEP+=("$cfg=$ms_")
  done
  BEST=$(printf '%s\n' "${SWEEP[@]}" | sort -t= -k2 -n | head -n 1 | cut -d= -f1)
  BEST_N=${BEST%/*}
  BEST_FLAG=$([ "${BEST#*/}" = h1 ] && echo -http1 || true)
  echo "limit: best N=$BEST_N ${BEST#*/}" >&2
fi

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

# --- a. first apply, BENCH_ROUNDS rounds ---------------------------------------------------
# A round: `kubectl apply --server-side` into a fresh namespace, then an agent's first apply
# into another. This VM's speed drifts within seconds, and an agent's first apply is a window
# of ~0.1 s, so one round can land anywhere: the medians over the rounds are the result.
# Rounds 2..N come first, each with a fresh agent (a new process for a new namespace, cold as a
# real first apply; its Kustomization takes the main namespace's GitRepository); the main
# agent's round is last, and its reconciles (b) and memory (c) are measured after it.
LMS=
limit_round() { # NS → LMS
  local nl=$1 got
  k create namespace "$nl" > /dev/null
  LMS=$(limit "$nl" "$BEST_N" $BEST_FLAG) || fail "limit into $nl"
  got=$($HELPER count-objects "$WORK/kubeconfig" "$nl")
  [ "$got" -eq "$N" ] || fail "limit applied $got objects in $nl, expected $N"
  $HELPER wait-settled "$WORK/kubeconfig" "$nl" $SETTLE || fail "Deployments in $nl never settled"
  LIMIT_ALL+=("$LMS")
}
first_apply_round() { # NS_KUBECTL NS_AGENT [ROUND] → KMS AMS (ms) and T (start, ns)
  local nk=$1 na=$2 round=${3:-0} got
  # On the real control plane the limit runs in the round too, first, second or last in turn.
  if [ "$CLUSTER" = real ] && [ $((round % 3)) -eq 0 ]; then limit_round "$NS_LIMIT-$round"; fi
  echo "round: kubectl apply --server-side of $N objects into $nk, then the agent's into $na …" >&2
  T=$(now_ns)
  k apply --server-side -n "$nk" -f "$WORK/rendered.yaml" > "$WORK/kubectl-apply.log" 2>&1 \
    || fail "kubectl apply --server-side"
  KMS=$(ms "$T" "$(now_ns)")
  got=$($HELPER count-objects "$WORK/kubeconfig" "$nk")
  [ "$got" -eq "$N" ] || fail "kubectl applied $got objects, expected $N"
  # The test server's workload stand-in writes each Deployment's status 300 ms after its
  # creation; let it finish, so the next measurement does not share the server with it.
  $HELPER wait-settled "$WORK/kubeconfig" "$nk" $SETTLE || fail "Deployments in $nk never settled"
  if [ "$CLUSTER" = real ] && [ $((round % 3)) -eq 1 ]; then limit_round "$NS_LIMIT-$round"; fi
  read -r T READY_AT APPLIED_REV < <($HELPER create-ready "$WORK/kubeconfig" "$na" bench bench \
    "$INTERVAL" 600 "$NS_AGENT") || fail "agent first apply in $na"
  AMS=$(ms "$T" "$READY_AT")
  got=$($HELPER count-objects "$WORK/kubeconfig" "$na")
  [ "$got" -eq "$N" ] || fail "agent applied $got objects in $na, expected $N"
  $HELPER wait-settled "$WORK/kubeconfig" "$na" $SETTLE || fail "Deployments in $na never settled"
  if [ "$CLUSTER" = real ] && [ $((round % 3)) -eq 2 ]; then limit_round "$NS_LIMIT-$round"; fi
  KUBECTL_ALL+=("$KMS")
  AGENT_ALL+=("$AMS")
  echo "round $round: kubectl $KMS ms, agent $AMS ms${LMS:+, limit $LMS ms}" >&2
}
KUBECTL_ALL=()
AGENT_ALL=()
for r in $(seq 2 "$ROUNDS"); do
  k create namespace "$NS_KUBECTL-$r" > /dev/null
  k create namespace "$NS_AGENT-$r" > /dev/null
  MALLOC_CONF=${BENCH_MALLOC_CONF-$DEPLOY_MALLOC_CONF} \
  "$BIN/ferry-applier" run --namespace "$NS_AGENT-$r" --source-server "$SRC_URL" \
    --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/agent-cache-$r" --log-format json \
    --metrics-addr "127.0.0.1:$($HELPER free-port)" > "$WORK/agent-$r.log" 2>&1 &
  EXTRA=$!
  PIDS+=($EXTRA)
  sleep 2 # connected and watching, as the main agent is
  kill -0 $EXTRA 2>/dev/null || fail "agent for $NS_AGENT-$r exited"
  first_apply_round "$NS_KUBECTL-$r" "$NS_AGENT-$r" "$r"
  kill $EXTRA
  wait $EXTRA 2>/dev/null || true
done
first_apply_round "$NS_KUBECTL" "$NS_AGENT" 1
read -r FETCH_MS APPLY_MS < <($HELPER phases "$WORK/agent.log" "$T")
read -r KUBECTL_MS AGENT_MS RATIO RATIOS < <(python3 - "${KUBECTL_ALL[*]}" "${AGENT_ALL[*]}" <<'PY'
import statistics, sys
k = [float(x) for x in sys.argv[1].split()]
a = [float(x) for x in sys.argv[2].split()]
r = [x / max(y, 1) for x, y in zip(k, a)]
print(f"{statistics.median(k):.0f} {statistics.median(a):.0f} {statistics.median(r):.2f}",
      ",".join(f"{x:.2f}" for x in r))
PY
)

if [ "$CLUSTER" = real ]; then
  read -r LIMIT_MS OVER_LIMIT OVER_ALL < <(python3 - "${LIMIT_ALL[*]}" "${AGENT_ALL[*]}" <<'PY'
import statistics, sys
l = [float(x) for x in sys.argv[1].split()]
a = [float(x) for x in sys.argv[2].split()]
r = [y / max(x, 1) for x, y in zip(l, a)]
print(f"{statistics.median(l):.0f} {statistics.median(r):.2f}", ",".join(f"{x:.2f}" for x in r))
PY
)
fi

# --- b. no-change reconciles (interval) ----------------------------------------------------
APPLIED='"message":"applied"'
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" 1 60 > /dev/null || fail "no 'applied' log line"
echo "waiting for interval reconciles ($INTERVAL each) …" >&2
# Counted from here: on the real control plane the controller manager's writes to the
# Deployments (status, ReplicaSets) made the agent reconcile (and log "applied") before now.
BASE=$(grep -c "$APPLIED" "$WORK/agent.log")
# Warm-up: the first interval reconcile.
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" $((BASE + 1)) 120 > /dev/null || fail "no interval reconcile"
M0=$($HELPER reconcile-seconds "$METRICS_URL") # scraped outside the CPU window
read -r C0 N0 _ _ < <($HELPER proc $AGENT); R0=$(now_ns)
if [ -n "${BENCH_PERF:-}" ]; then
  perf record -q -g -p $AGENT -o "$WORK/perf.data" > "$WORK/perf.log" 2>&1 &
  PERF=$!
  PIDS+=($PERF)
fi
$HELPER wait-lines "$WORK/agent.log" "$APPLIED" $((BASE + 1 + RECONCILES)) 300 > /dev/null \
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
if [ "$CLUSTER" = real ]; then
  echo "API server: the real control plane ($("$KUBECTL" --kubeconfig "$WORK/kubeconfig" version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), etcd, kube-controller-manager; no nodes)"
  echo "limit sweep (ms): ${SWEEP[*]}"
else
  echo "API server: ferry-testcluster"
fi
printf '%-58s %12s %10s %s\n' "measure" "value" "target" "verdict"
if [ "$CLUSTER" = real ]; then
  printf '%-58s %12s %10s %s\n' "a. limit: minimal client, N=$BEST_N ${BEST#*/} (ms, median)" "$LIMIT_MS" "" "rounds: ${LIMIT_ALL[*]}"
fi
printf '%-58s %12s %10s %s\n' "a. kubectl apply --server-side, first apply (ms, median)" "$KUBECTL_MS" "" "rounds: ${KUBECTL_ALL[*]}"
printf '%-58s %12s %10s %s\n' "a. agent first apply, Kustomization → Ready (ms, median)" "$AGENT_MS" "" "rounds: ${AGENT_ALL[*]}"
printf '%-58s %12s %10s\n' "a.   main agent: until the artifact was fetched (log)" "$FETCH_MS" ""
printf '%-58s %12s %10s\n' "a.   main agent: until the 'applied' log line (log)" "$APPLY_MS" ""
printf '%-58s %12s %10s %s\n' "a. speed-up kubectl / agent (×, median of the rounds)" "$RATIO" "≥ 5" "$(verdict "$RATIO >= 5") (rounds: ${RATIOS//,/ })"
if [ "$CLUSTER" = real ]; then
  printf '%-58s %12s %10s %s\n' "a. agent ÷ limit (×, median of the rounds)" "$OVER_LIMIT" "" "rounds: ${OVER_ALL//,/ }"
fi
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
