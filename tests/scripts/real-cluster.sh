#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for tests and benchmarks.
#
#   real-cluster.sh build        build kube-apiserver, kube-controller-manager (k8s.io/kubernetes
#                                $KUBE_VERSION) and etcd ($ETCD_VERSION) from the Go module proxy
#                                into $FERRY_KUBE_CACHE (default ~/.cache/ferry/kube/<versions>);
#                                binaries whose stamp matches are reused. Prints the bin directory.
#   real-cluster.sh start DIR    start etcd, kube-apiserver and kube-controller-manager with TLS,
#                                RBAC and ServiceAccount keys on free 127.0.0.1 ports; writes
#                                DIR/kubeconfig (admin, O=system:masters) and prints its path.
#   real-cluster.sh stop DIR     stop exactly the processes `start DIR` started.
#   real-cluster.sh bin          print the bin directory (after build).
#
# Why a wrapper module: `go install k8s.io/kubernetes/cmd/kube-apiserver@v…` is refused, because
# k8s.io/kubernetes's go.mod replaces every k8s.io/* staging module with ./staging/…, and replace
# directives of a dependency are ignored. The wrapper requires k8s.io/kubernetes and replaces each
# staging module with its published v0.<minor>.<patch>. etcd's server module has replace
# directives too, so it gets a 10-line main in its own module.
set -euo pipefail

# v1.35.4, not kubectl's v1.35.2: the proxy answers 403 for some v0.35.2 staging modules
# (k8s.io/kube-controller-manager, k8s.io/externaljwt); every staging module is served at v0.35.4.
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
go_version=$(go env GOVERSION)
cache_root=${FERRY_KUBE_CACHE:-$HOME/.cache/ferry/kube}
bin_dir="$cache_root/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-$go_version"
stamp="kube=$KUBE_VERSION etcd=$ETCD_VERSION go=$go_version"

log() { echo "real-cluster: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

build() {
  if [ -f "$bin_dir/stamp" ] && [ "$(cat "$bin_dir/stamp")" = "$stamp" ] \
     && [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kube-controller-manager" ] \
     && [ -x "$bin_dir/etcd" ]; then
    log "reusing $bin_dir ($stamp)"
    echo "$bin_dir"
    return
  fi
  mkdir -p "$bin_dir"
  # Global, and removed on exit: a RETURN trap would outlive this function and fire again.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  local minor patch staging_version
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  patch=$(echo "$KUBE_VERSION" | cut -d. -f3)
  staging_version="v0.$minor.$patch"

  log "building kube-apiserver and kube-controller-manager $KUBE_VERSION (staging $staging_version)"
  mkdir -p "$work/kube"
  (
    cd "$work/kube"
    go mod init ferry.dev/realcluster/kube >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    # Every staging module k8s.io/kubernetes replaces with ./staging/src/k8s.io/X.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      go mod edit -replace="$m=$m@$staging_version"
    done
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBE_VERSION" >/dev/null
    local ld="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    for cmd in kube-apiserver kube-controller-manager; do
      CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$bin_dir/$cmd.new" "k8s.io/kubernetes/cmd/$cmd"
      mv "$bin_dir/$cmd.new" "$bin_dir/$cmd"
    done
  )

  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  (
    cd "$work/etcd"
    go mod init ferry.dev/realcluster/etcd >/dev/null 2>&1
    cat > main.go <<'GO'
// etcd's server, built from its module (its own go.mod has replace directives, so it cannot be
// installed with `go install`).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go mod tidy >/dev/null
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd.new" .
    mv "$bin_dir/etcd.new" "$bin_dir/etcd"
  )
  echo "$stamp" > "$bin_dir/stamp"
  log "built into $bin_dir"
  echo "$bin_dir"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One certificate signed by the cluster CA: name, subject, extensions.
issue() {
  local dir=$1 name=$2 subj=$3 ext=$4
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/$name.key" -subj "$subj" \
    -out "$dir/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

kubeconfig() {
  local out=$1 server=$2 pki=$3 user=$4
  cat > "$out" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: ferry-real
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$user.crt")
    client-key-data: $(base64 -w0 "$pki/$user.key")
contexts:
- name: ferry-real
  context: {cluster: ferry-real, user: $user, namespace: default}
current-context: ferry-real
YAML
}

# Waits until URL answers 200 with the admin certificate, or the process PIDFILE died.
wait_ok() {
  local url=$1 pki=$2 pidfile=$3 what=$4 logf=$5 deadline=$((SECONDS + ${6:-60}))
  until curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$url" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "$what exited; last lines of $logf:"; tail -n 20 "$logf" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$what not ready at $url after ${6:-60}s; last lines of $logf:"; tail -n 20 "$logf" >&2; return 1
    fi
    sleep 0.2
  done
}

start() {
  local dir=${1:?usage: $0 start DIR}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -x "$bin_dir/kube-apiserver" ] || { log "no binaries in $bin_dir: run '$0 build' first"; exit 1; }
  if [ -f "$dir/apiserver.pid" ] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
    log "already running in $dir"; echo "$dir/kubeconfig"; return
  fi
  local pki="$dir/pki" t0
  t0=$(now)
  # Whatever fails from here on, stop what was started.
  # shellcheck disable=SC2064
  trap "log 'start failed; stopping what started'; stop '$dir'" EXIT
  mkdir -p "$pki"
  # P-256 keys throughout: generating five RSA keys took 2 s on a loaded machine.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 30 \
    -subj "/CN=ferry-real-cluster-ca" 2>/dev/null
  issue "$pki" apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth"
  issue "$pki" admin "/O=system:masters/CN=ferry-admin" "extendedKeyUsage=clientAuth"
  issue "$pki" controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  # Its own serving certificate: by default it makes a self-signed one nobody can verify.
  issue "$pki" controller-manager-serving "/CN=kube-controller-manager" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  log "certificates and keys: $(since "$t0")s"
  local etcd_port etcd_peer api_port kcm_port t1
  t1=$(now)
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port); kcm_port=$(free_port)
  local server="https://127.0.0.1:$api_port"

  "$bin_dir/etcd" --name ferry --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "ferry=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level warn \
    >"$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"

  "$bin_dir/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --endpoint-reconciler-type none --service-cluster-ip-range 10.96.0.0/16 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    >"$dir/apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"

  kubeconfig "$dir/kubeconfig" "$server" "$pki" admin
  kubeconfig "$dir/controller-manager.kubeconfig" "$server" "$pki" controller-manager
  wait_ok "$server/readyz" "$pki" "$dir/apiserver.pid" kube-apiserver "$dir/apiserver.log" 90
  log "etcd + kube-apiserver ready: $(since "$t1")s"
  t1=$(now)

  "$bin_dir/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --use-service-account-credentials=true --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --tls-cert-file "$pki/controller-manager-serving.crt" \
    --tls-private-key-file "$pki/controller-manager-serving.key" \
    >"$dir/controller-manager.log" 2>&1 &
  echo $! > "$dir/controller-manager.pid"
  wait_ok "https://127.0.0.1:$kcm_port/healthz" "$pki" "$dir/controller-manager.pid" \
    kube-controller-manager "$dir/controller-manager.log" 60
  log "kube-controller-manager healthy: $(since "$t1")s"
  # Namespaces get their `default` ServiceAccount from the controller manager: wait for the
  # first one, so a caller can create Pods (and Deployments' Pods) at once.
  local deadline=$((SECONDS + 60))
  until curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "$server/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "no default ServiceAccount after 60s"; exit 1; }
    sleep 0.2
  done
  trap - EXIT
  log "ready in $(since "$t0")s: $server (logs and pids in $dir)"
  echo "$dir/kubeconfig"
}

stop() {
  local dir=${1:?usage: $0 stop DIR}
  local p pid pids=()
  for p in controller-manager apiserver etcd; do
    [ -f "$dir/$p.pid" ] || continue
    pid=$(cat "$dir/$p.pid")
    rm -f "$dir/$p.pid"
    # Only our process: a recycled pid belongs to someone else.
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$dir" || continue
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  # All at once, a graceful moment (the data is throwaway), then SIGKILL.
  for _ in $(seq 1 30); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

# `start`, again with new ports when one was taken between being picked and being bound (a
# port is picked free, but another process's connection can take it first; CI once lost a
# whole run to that). Each attempt is its own process, so `set -e` holds inside it.
start_retrying() {
  local dir=${1:?usage: $0 start DIR} attempt
  for attempt in 1 2 3; do
    bash "$0" start-once "$dir" && return 0
    grep -qs "address already in use" "$dir/etcd.log" "$dir/apiserver.log" \
      "$dir/controller-manager.log" || return 1
    log "a port was taken before it was bound (attempt $attempt of 3); starting again on new ports"
    rm -rf "$dir/etcd-data" "$dir/etcd.log" "$dir/apiserver.log" "$dir/controller-manager.log"
  done
  return 1
}

case "${1:-}" in
  build) build ;;
  start) start_retrying "${2:-}" ;;
  start-once) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  bin) echo "$bin_dir" ;;
  *) echo "usage: $0 build|start DIR|stop DIR|bin" >&2; exit 2 ;;
esac
