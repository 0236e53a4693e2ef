#!/usr/bin/env bash
# Agent benchmark against Ferry's API test server (same server, same run):
#   1. first apply of 1000 objects (500 ConfigMaps + 500 Deployments): the agent (from the
#      Kustomization's creation to lastAppliedRevision) vs `kubectl apply --server-side` of the
#      same YAML into another namespace;
#   2. CPU time per reconcile with nothing changed (1000 objects), from /proc and the agent's
#      reconcile counter;
#   3. agent RSS idle (no Kustomization) and with 1000 inventoried objects.
# Usage: applier/bench/apply-1000.sh   (PROFILE=dev for a quick unoptimised run)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
profile=${PROFILE:-release}
dir=$([[ $profile == dev ]] && echo debug || echo "$profile")
cargo build --quiet --profile "$profile" -p ferry-applier -p ferry-source-server -p ferry-testcluster --bins
bin="${CARGO_TARGET_DIR:-$repo/target}/$dir"
kubectl="${FERRY_KUBECTL:-$repo/.tools/bin/kubectl}"
[[ -x $kubectl ]] || "$repo/tests/scripts/install-tools.sh"

work=$(mktemp -d -t ferry-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export HOME="$work/home"; mkdir -p "$HOME"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_until() { local limit=$1; shift; for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timeout: $*" >&2; exit 1; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# 1000 objects in one directory of a Git repo.
git init -q --bare -b main "$work/repo.git"; git init -q -b main "$work/w"
mkdir -p "$work/w/many"
for i in $(seq -w 0 499); do
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s\ndata:\n  key: value-%s\n---\n' "$i" "$i"
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%s\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: app-%s}\n  template:\n    metadata:\n      labels: {app: app-%s}\n    spec:\n      containers:\n      - name: app\n        image: registry.example/app:%s\n---\n' "$i" "$i" "$i" "$i"
done > "$work/w/many/objects.yaml"
git -C "$work/w" -c user.name=b -c user.email=b@b add -A
git -C "$work/w" -c user.name=b -c user.email=b@b commit -q -m objects
git -C "$work/w" push -q "$work/repo.git" main

"$bin/ferry-testcluster" --kubeconfig-out "$work/kubeconfig" >"$work/cluster.log" 2>&1 &
pids+=($!)
wait_until 20 test -s "$work/kubeconfig"
k() { "$kubectl" --kubeconfig "$work/kubeconfig" "$@"; }
k apply -k deploy/crds >/dev/null
for ns in bench-kubectl bench-agent bench-idle; do k create namespace $ns >/dev/null; done

echo "== 1000 objects, first apply"
t0=$(now)
k apply --server-side -n bench-kubectl -f "$work/w/many/objects.yaml" >/dev/null
t1=$(now)
kubectl_s=$(echo "$t1 - $t0" | bc -l)
printf 'kubectl apply --server-side: %.2f s\n' "$kubectl_s"

src_port=$(free_port)
printf 'apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {name: bench, namespace: bench-agent}\nspec:\n  url: file://%s\n  interval: 1m\n' "$work/repo.git" > "$work/sources.yaml"
"$bin/ferry-source-server" serve --config "$work/sources.yaml" --storage "$work/storage" --cache "$work/mirrors" --listen "127.0.0.1:$src_port" >"$work/source.log" 2>&1 &
pids+=($!)
wait_until 30 bash -c "curl -sf http://127.0.0.1:$src_port/v1/sources/bench-agent/bench | grep -q digest"

m_port=$(free_port)
"$bin/ferry-applier" run --namespace bench-agent --source-server "http://127.0.0.1:$src_port" \
  --kubeconfig "$work/kubeconfig" --cache-dir "$work/cache" --metrics-addr "127.0.0.1:$m_port" >"$work/agent.log" 2>&1 &
agent=$!; pids+=($agent)
"$bin/ferry-applier" run --namespace bench-idle --source-server "http://127.0.0.1:$src_port" \
  --kubeconfig "$work/kubeconfig" --cache-dir "$work/cache-idle" >"$work/idle.log" 2>&1 &
idle=$!; pids+=($idle)
sleep 2
t0=$(now)
k apply -f - >/dev/null <<YAML
apiVersion: apply.ferry.dev/v1
kind: Kustomization
metadata: {name: bench, namespace: bench-agent}
spec:
  sourceRef: {kind: GitRepository, name: bench}
  path: ./many
  interval: 2s
  timeout: 5m
  prune: true
YAML
applied() { [[ -n "$(k get kustomization bench -n bench-agent -o jsonpath='{.status.lastAppliedRevision}')" ]]; }
wait_until 600 applied
t1=$(now)
agent_s=$(echo "$t1 - $t0" | bc -l)
printf 'ferry agent:                 %.2f s  (%.1fx faster)\n' "$agent_s" "$(echo "$kubectl_s / $agent_s" | bc -l)"

echo "== reconcile with nothing changed (1000 objects)"
reconciles() { curl -sf "http://127.0.0.1:$m_port/metrics" | awk '/^ferry_applier_reconciles_total/ {s += $2} END {print s + 0}'; }
sleep 3
r0=$(reconciles); c0=$(cpu_ticks $agent)
sleep 20
r1=$(reconciles); c1=$(cpu_ticks $agent)
hz=$(getconf CLK_TCK)
n=$((r1 - r0))
if (( n > 0 )); then
  printf 'agent CPU per no-change reconcile: %.1f ms (%d reconciles, %d ticks)\n' \
    "$(echo "($c1 - $c0) * 1000 / $hz / $n" | bc -l)" "$n" "$((c1 - c0))"
else
  echo "no reconcile observed in 20 s"
fi

echo "== memory"
printf 'agent RSS idle:                       %d KiB\n' "$(rss_kib $idle)"
printf 'agent RSS with 1000 inventoried:      %d KiB\n' "$(rss_kib $agent)"
