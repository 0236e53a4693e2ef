#!/usr/bin/env bash
# Ferry's main job, end to end, on this machine: a local Git repo with the seed example
# (Deployment my-app + Service), the source server mirroring it, a Kubernetes API (the cluster
# in $KUBECONFIG when set; with FERRY_REAL_CLUSTER=1 a real kube-apiserver +
# kube-controller-manager + etcd from tests/scripts/real-cluster.sh, built from the Go module
# proxy on first use, with a node stand-in; else Ferry's API test server), and an agent for one
# namespace.
# Prints each step: the artifact digest, the objects applied, a tag bump, and drift reverted.
# Everything it starts is stopped on exit; nothing outside a temp dir is written.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
NS=ferry-demo

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# Bounded wait: wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 $((limit * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "--- agent log ---" >&2; tail -n 30 "$work/agent.log" >&2 || true
  die "timed out after ${limit}s waiting for $what"
}

step "Building ferry-applier, ferry-source-server, ferry-testcluster and ferry-node-standin"
cargo build --quiet -p ferry-applier -p ferry-source-server -p ferry-testcluster -p ferry-tests --bins
bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
kubectl="${FERRY_KUBECTL:-$repo/.tools/bin/kubectl}"
if [[ ! -x "$kubectl" ]]; then
  "$repo/tests/scripts/install-tools.sh"
fi
for tool in git curl python3; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

work=$(mktemp -d -t ferry-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -f "$work/cluster/apiserver.pid" ]]; then
    HOME=$user_home "$repo/tests/scripts/real-cluster.sh" stop "$work/cluster"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
user_home=$HOME            # the real control plane's build cache lives there
export HOME="$work/home"   # kubectl's discovery cache stays in the temp dir
mkdir -p "$HOME"

step "Git: a repository with the seed example"
git_() { git -C "$work/work" -c user.name=demo -c user.email=demo@ferry.invalid "$@"; }
git init -q --bare -b main "$work/repo.git"
git init -q -b main "$work/work"
git_ remote add origin "$work/repo.git"
deployment() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-app
  labels: {app: my-app}
spec:
  replicas: 2
  selector:
    matchLabels: {app: my-app}
  template:
    metadata:
      labels: {app: my-app}
    spec:
      containers:
      - name: my-app
        image: my-registry/my-app:$1
        ports:
        - containerPort: 8080
YAML
}
mkdir -p "$work/work/app"
deployment v1.0.0 > "$work/work/app/deployment.yaml"
cat > "$work/work/app/service.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: my-app
spec:
  selector: {app: my-app}
  ports:
  - port: 80
    targetPort: 8080
YAML
cat > "$work/work/app/kustomization.yaml" <<'YAML'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
YAML
git_ add -A && git_ commit -q -m "my-app v1.0.0" && git_ push -q origin main
echo "committed $(git_ rev-parse --short HEAD): app/{deployment,service,kustomization}.yaml"

if [[ -n "${KUBECONFIG:-}" ]]; then
  step "Kubernetes: using the cluster in KUBECONFIG=$KUBECONFIG"
  kubeconfig=$KUBECONFIG
elif [[ -n "${FERRY_REAL_CLUSTER:-}" ]]; then
  step "Kubernetes: starting a real control plane (kube-apiserver, kube-controller-manager, etcd)"
  command -v go >/dev/null || die "FERRY_REAL_CLUSTER needs Go to build the control plane"
  HOME=$user_home "$repo/tests/scripts/real-cluster.sh" build >/dev/null
  kubeconfig=$(HOME=$user_home "$repo/tests/scripts/real-cluster.sh" start "$work/cluster")
  # Pods need a node: the stand-in binds them and reports them running.
  "$bin/ferry-node-standin" --kubeconfig "$kubeconfig" >"$work/nodes.log" 2>&1 &
  pids+=($!)
  "$kubectl" --kubeconfig "$kubeconfig" version | grep Server
else
  step "Kubernetes: starting Ferry's API test server"
  kubeconfig="$work/kubeconfig"
  "$bin/ferry-testcluster" --kubeconfig-out "$kubeconfig" >"$work/cluster.log" 2>&1 &
  pids+=($!)
  wait_until 20 "the API test server" test -s "$kubeconfig"
  grep -m1 'serving' "$work/cluster.log" || true
fi
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
k apply -k deploy/crds >/dev/null
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
wait_until 20 "the Kustomization CRD" k get kustomizations -n "$NS"
echo "CRDs installed, namespace $NS ready"

step "Source server: mirroring the repository"
src_port=$(free_port)
src="http://127.0.0.1:$src_port"
cat > "$work/sources.yaml" <<YAML
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata: {name: app, namespace: $NS}
spec:
  url: file://$work/repo.git
  interval: 1s
  ref: {branch: main}
YAML
"$bin/ferry-source-server" serve --config "$work/sources.yaml" --storage "$work/storage" \
  --cache "$work/mirrors" --listen "127.0.0.1:$src_port" >"$work/source-server.log" 2>&1 &
pids+=($!)
artifact() {
  curl -sf "$src/v1/sources/$NS/app" | python3 -c '
import json, sys
a = json.load(sys.stdin)["status"].get("artifact")
if not a: sys.exit(1)
print(a["revision"], a["digest"], a["size"])'
}
wait_until 30 "the first artifact" artifact
read -r revision digest size < <(artifact)
echo "artifact: revision $revision"
echo "          digest   $digest ($size bytes uncompressed)"

step "Agent: ferry-applier run --namespace $NS"
"$bin/ferry-applier" run --namespace "$NS" --source-server "$src" --kubeconfig "$kubeconfig" \
  --cache-dir "$work/agent-cache" >"$work/agent.log" 2>&1 &
pids+=($!)
k apply -f - >/dev/null <<YAML
apiVersion: apply.ferry.dev/v1
kind: Kustomization
metadata: {name: app, namespace: $NS}
spec:
  sourceRef: {kind: GitRepository, name: app}
  path: ./app
  interval: 2s
  retryInterval: 2s
  timeout: 30s
  prune: true
YAML
ready() {
  [[ "$(k get kustomization app -n "$NS" -o jsonpath='{.status.lastAppliedRevision}')" == "$1" ]]
}
wait_until 60 "the first apply" ready "$revision"
echo "Kustomization app: $(k get kustomization app -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
echo "objects applied (Event from ferry-applier):"
k get events -n "$NS" -o jsonpath='{range .items[?(@.involvedObject.name=="app")]}{.message}{"\n"}{end}' | sed 's/^/  /'
k get deployment,service -n "$NS"

step "Git: bump the image tag to v1.0.1"
deployment v1.0.1 > "$work/work/app/deployment.yaml"
git_ commit -q -am "my-app v1.0.1" && git_ push -q origin main
image() { k get deployment my-app -n "$NS" -o jsonpath='{.spec.template.spec.containers[0].image}'; }
wait_until 60 "the tag bump" bash -c "[[ \"\$(\"$kubectl\" --kubeconfig \"$kubeconfig\" get deployment my-app -n $NS -o jsonpath='{.spec.template.spec.containers[0].image}')\" == my-registry/my-app:v1.0.1 ]]"
read -r revision digest size < <(artifact)
echo "new artifact $digest ($revision)"
echo "deployment/my-app image: $(image)"

step "Drift: kubectl scale deployment my-app --replicas=5"
k scale deployment my-app -n "$NS" --replicas=5
echo "replicas now: $(k get deployment my-app -n "$NS" -o jsonpath='{.spec.replicas}')"
replicas_back() { [[ "$(k get deployment my-app -n "$NS" -o jsonpath='{.spec.replicas}')" == 2 ]]; }
wait_until 30 "the drift to be reverted" replicas_back
echo "drift reverted: replicas back to $(k get deployment my-app -n "$NS" -o jsonpath='{.spec.replicas}') (from Git)"

step "Done: Git → artifact → agent → cluster, with drift undone"
