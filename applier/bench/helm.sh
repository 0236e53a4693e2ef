#!/usr/bin/env bash
# HelmRelease benchmark (issue 14): a chart of ~100 objects (BENCH_CM ConfigMaps + BENCH_DEP
# Deployments, default 70 + 30), rendered from a GitRepository, on the same API server:
#   a. first install: `helm upgrade --install --wait` (the whole helm process) into one
#      namespace vs the agent (HelmRelease created → Ready=True, via `kubectl wait`; the agent
#      always waits for readiness, as Flux's helm-controller does) into another;
#   b. no change: `helm upgrade --install --wait` again (helm renders, writes release v2) vs the
#      agent's interval reconcile (CPU per reconcile from /proc, wall from the agent's
#      reconcile-duration metric), BENCH_RECONCILES of them (default 5, interval 5s);
#   c. agent RSS with BENCH_RELEASES HelmReleases (default 20) of the chart, all Ready.
#
#   applier/bench/helm.sh                   (test server)
#   BENCH_CLUSTER=real applier/bench/helm.sh (the real control plane; needs real-cluster.sh build)
#
# Binaries from BENCH_BIN_DIR (default <repo>/target/release; build them first:
# cargo build --release -p ferry-applier -p ferry-source-server -p ferry-testcluster); on the
# real control plane the node stand-in from BENCH_NODE_BIN (default target/debug/ferry-node-standin,
# cargo build -p ferry-tests --bin ferry-node-standin).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELPER="python3 $ROOT/applier/bench/helper.py"
BIN=${BENCH_BIN_DIR:-$ROOT/target/release}
KUBECTL=${FERRY_KUBECTL:-$ROOT/.tools/bin/kubectl}
HELM=${FERRY_HELM:-$ROOT/.tools/bin/helm}
N_CM=${BENCH_CM:-70}
N_DEP=${BENCH_DEP:-30}
RECONCILES=${BENCH_RECONCILES:-5}
RELEASES=${BENCH_RELEASES:-20}
CLUSTER=${BENCH_CLUSTER:-test}
NS=bench-agent
NS_HELM=bench-helm
WORK=$(mktemp -d /tmp/ferry-helm-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  [ "$CLUSTER" = real ] && [ -d "$WORK/cluster" ] && "$ROOT/tests/scripts/real-cluster.sh" stop "$WORK/cluster"
  if [ -n "${BENCH_KEEP:-}" ] || [ $rc -ne 0 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*" >&2
  for f in "$WORK"/*.log; do echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
now_ns() { date +%s%N; }
ms() { python3 -c "print(f'{($2 - $1) / 1e6:.0f}')" "$@"; }
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }
h() { HOME=$WORK/helm-home "$HELM" --kubeconfig "$WORK/kubeconfig" "$@"; }
metric() { # NAME LABEL-SUBSTRING → sum
  curl -s "$METRICS_URL" | awk -v n="$1" -v l="$2" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}

# --- the chart, in Git ---------------------------------------------------------------------
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ferry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ferry.invalid
CHART=$WORK/repo/charts/bench
mkdir -p "$CHART/templates"
printf 'apiVersion: v2\nname: bench\nversion: 1.0.0\n' > "$CHART/Chart.yaml"
printf 'configmaps: %s\ndeployments: %s\n' "$N_CM" "$N_DEP" > "$CHART/values.yaml"
cat > "$CHART/templates/configmaps.yaml" <<'EOF'
{{- range $i := until (int .Values.configmaps) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-config-{{ $i }}
  labels:
    app.kubernetes.io/instance: {{ $.Release.Name }}
data:
  index: {{ $i | quote }}
  payload: {{ printf "value-%d" $i | repeat 8 | quote }}
{{- end }}
EOF
cat > "$CHART/templates/deployments.yaml" <<'EOF'
{{- range $i := until (int .Values.deployments) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $.Release.Name }}-web-{{ $i }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ $.Release.Name }}-web-{{ $i }}
  template:
    metadata:
      labels:
        app: {{ $.Release.Name }}-web-{{ $i }}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.{{ $i }}
        resources:
          requests: {cpu: 10m, memory: 16Mi}
{{- end }}
EOF
git init -q -b main "$WORK/repo"
git -C "$WORK/repo" add -A
git -C "$WORK/repo" commit -q -m "bench chart"
N=$(h template bench "$CHART" | grep -c '^kind:')
echo "chart: $N objects" >&2

# --- API server ----------------------------------------------------------------------------
if [ "$CLUSTER" = real ]; then
  "$ROOT/tests/scripts/real-cluster.sh" start "$WORK/cluster" > "$WORK/real-cluster.log" 2>&1 \
    || fail "real-cluster.sh start"
  cp "$WORK/cluster/kubeconfig" "$WORK/kubeconfig"
  # No kubelet: the stand-in makes Pods run, so Deployments become Available (helm --wait and
  # the agent's health wait both need that).
  "${BENCH_NODE_BIN:-$ROOT/target/debug/ferry-node-standin}" --kubeconfig "$WORK/kubeconfig" \
    > "$WORK/node-standin.log" 2>&1 &
  PIDS+=($!)
else
  "$BIN/ferry-testcluster" --listen 127.0.0.1:0 --kubeconfig-out "$WORK/kubeconfig" \
    > "$WORK/testcluster.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/kubeconfig" ] && break; sleep 0.1; done
fi
k apply -k "$ROOT/deploy/crds" > /dev/null
k wait --for condition=established --timeout 60s crd/helmreleases.apply.ferry.dev > /dev/null
k create namespace "$NS" > /dev/null
k create namespace "$NS_HELM" > /dev/null

# --- a/b. helm --------------------------------------------------------------------------------
T=$(now_ns)
HOME=$WORK/helm-home /usr/bin/time -f '%M' -o "$WORK/helm-rss-1" "$HELM" --kubeconfig "$WORK/kubeconfig" upgrade --install --wait --timeout 5m bench "$CHART" -n "$NS_HELM" > "$WORK/helm.log" 2>&1 || fail "helm install"
HELM_INSTALL=$(ms "$T" "$(now_ns)")
T=$(now_ns)
HOME=$WORK/helm-home /usr/bin/time -f '%M' -o "$WORK/helm-rss-2" "$HELM" --kubeconfig "$WORK/kubeconfig" upgrade --install --wait --timeout 5m bench "$CHART" -n "$NS_HELM" >> "$WORK/helm.log" 2>&1 || fail "helm upgrade"
HELM_NOCHANGE=$(ms "$T" "$(now_ns)")
echo "helm: install $HELM_INSTALL ms, no-change upgrade $HELM_NOCHANGE ms" >&2

# --- agent ---------------------------------------------------------------------------------
SRC_PORT=$($HELPER free-port)
SRC_URL=http://127.0.0.1:$SRC_PORT
printf 'apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: bench\n  namespace: %s\nspec:\n  url: file://%s\n  interval: 10m\n  ref:\n    branch: main\n' \
  "$NS" "$WORK/repo" > "$WORK/sources.yaml"
"$BIN/ferry-source-server" serve --config "$WORK/sources.yaml" --storage "$WORK/storage" \
  --cache "$WORK/mirrors" --listen "127.0.0.1:$SRC_PORT" > "$WORK/source-server.log" 2>&1 &
PIDS+=($!)
$HELPER wait-artifact "$SRC_URL" "$NS" bench 60 > /dev/null || fail "source server artifact"
METRICS_PORT=$($HELPER free-port)
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
MALLOC_CONF=$(grep -A1 'name: MALLOC_CONF' "$ROOT/deploy/agent/deployment.yaml" | sed -n 's/.*value: *//p') \
"$BIN/ferry-applier" run --namespace "$NS" --source-server "$SRC_URL" --kubeconfig "$WORK/kubeconfig" \
  --cache-dir "$WORK/agent-cache" --log-format json --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --helm-binary "$HELM" > "$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
sleep 3
read -r _ _ IDLE_RSS _ < <($HELPER proc $AGENT)
release() { # NAME INTERVAL
  printf 'apiVersion: apply.ferry.dev/v1\nkind: HelmRelease\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  interval: %s\n  timeout: 5m\n  chart:\n    spec:\n      chart: ./charts/bench\n      sourceRef: {kind: GitRepository, name: bench}\n' "$1" "$NS" "$2"
}
T=$(now_ns)
release bench 5s | k apply -f - > /dev/null
k wait -n "$NS" --for condition=Ready --timeout 300s helmrelease/bench > /dev/null || fail "HelmRelease bench not Ready"
AGENT_INSTALL=$(ms "$T" "$(now_ns)")
got=$(k get cm,deploy -n "$NS" -o name | grep -c bench- || true)
[ "$got" -eq "$N" ] || fail "agent applied $got objects, expected $N"
echo "agent: install $AGENT_INSTALL ms" >&2

SERIES='kustomization="HelmRelease/bench",result="success"'
c0=$(metric ferry_applier_reconciles_total "$SERIES")
read -r TK0 NS0 _ _ < <($HELPER proc $AGENT)
s0=$(metric ferry_applier_reconcile_duration_seconds_sum "$SERIES")
until [ "$(metric ferry_applier_reconciles_total "$SERIES")" -ge $((c0 + RECONCILES)) ]; do sleep 0.2; done
read -r TK1 NS1 RSS1 HWM1 < <($HELPER proc $AGENT)
s1=$(metric ferry_applier_reconcile_duration_seconds_sum "$SERIES")
c1=$(metric ferry_applier_reconciles_total "$SERIES")
CPU_MS=$(python3 -c "print(f'{($NS1 - $NS0) / 1e6 / ($c1 - $c0):.1f}')")
WALL_MS=$(python3 -c "print(f'{($s1 - $s0) * 1000 / ($c1 - $c0):.1f}')")
HISTORY=$(k get helmrelease bench -n "$NS" -o jsonpath='{.status.history[*].version}')
echo "agent: no-change reconcile $WALL_MS ms wall, $CPU_MS ms CPU (incl. idle), over $((c1 - c0)); history: $HISTORY" >&2

# --- c. RSS with $RELEASES HelmReleases -----------------------------------------------------
for i in $(seq 2 "$RELEASES"); do release "bench-$i" 10m | k apply -f - > /dev/null; done
k wait -n "$NS" --for condition=Ready --timeout 600s helmrelease --all > /dev/null || fail "HelmReleases not Ready"
sleep 3
read -r _ _ RSS20 HWM20 < <($HELPER proc $AGENT)

cat <<EOF
| ${N}-object chart ($CLUSTER) | helm v4 | Ferry agent |
|---|---|---|
| first install, ready | $HELM_INSTALL ms (\`helm upgrade --install --wait\`, peak RSS $(cat "$WORK/helm-rss-1") KiB) | $AGENT_INSTALL ms (HelmRelease created → Ready) |
| no change | $HELM_NOCHANGE ms (\`helm upgrade --install --wait\`, writes release v2) | $WALL_MS ms wall, $CPU_MS ms CPU per interval reconcile (history: $HISTORY) |
| agent RSS | | idle $IDLE_RSS KiB; 1 release $RSS1 KiB; $RELEASES releases ($((RELEASES * N)) objects) $RSS20 KiB, peak $HWM20 KiB |
EOF
