#!/usr/bin/env bash
# Build and run a real Kubernetes API server (kube-apiserver + etcd) on loopback, for development and tests.
#
#   scripts/kube.sh fetch             build both binaries from the Go module proxy into the cache (idempotent)
#   scripts/kube.sh fetch --background    the same, detached (`make test`: the build overlaps the tests that
#                                         come before the Kubernetes ones; `start` waits for it on the lock)
#   eval "$(scripts/kube.sh start DIR)"   start etcd + kube-apiserver; prints one line: KUBECONFIG=DIR/kubeconfig
#   scripts/kube.sh stop DIR          stop what `start DIR` started
#
# There is no kubelet, scheduler or controller-manager: objects (namespaces, pods, events) can be created, listed
# and watched exactly as on a cluster, but pods never run. Because no controller-manager creates each namespace's
# `default` ServiceAccount, the ServiceAccount admission plugin is off (pods would otherwise be refused); and since
# the server advertises 127.0.0.1, which the API refuses as an endpoint address, the `kubernetes` Service gets no
# endpoints (--endpoint-reconciler-type none).
#
# Why a build: Kubernetes publishes no binaries to any registry reachable here, but its source is a Go module.
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every k8s.io/* staging module with a local
# directory), so `fetch` writes a throwaway module that requires it and pins each staging module to the matching
# published v0.x release, then builds only cmd/kube-apiserver. etcd's server module has its own main package and
# replace directives, so it gets a throwaway module of its own (each binary keeps its upstream dependency pins).
# Builds use -trimpath and no DWARF/symbol tables, and by default no optimisation or inlining (-N -l): that
# takes a quarter off the compile (the bulk of a cold build: about 9 instead of 12 CPU minutes for
# kube-apiserver) and costs a test server little (it starts in ~3 s more). The Go build and module caches are
# the usual ones, so a second build (another version, a cleaned cache directory) reuses compiled packages.
#
# Environment:
#   KUBE_VERSION     k8s.io/kubernetes release to build (default v1.34.4)
#   ETCD_VERSION     go.etcd.io/etcd/server/v3 release to build (default v3.6.13)
#   KUBE_GCFLAGS     go build -gcflags (default "all=-N -l"; empty for an optimised build)
#   KUBE_START_TIMEOUT  seconds to wait for /readyz (default 90)
#   OBSERVER_CACHE   cache root (default ~/.cache/observer-plane); binaries go under kube/<version>/
#
# Only the line for `eval` goes to stdout; progress and errors go to stderr.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.13}
GCFLAGS=${KUBE_GCFLAGS-all=-N -l}
START_TIMEOUT=${KUBE_START_TIMEOUT:-90}
ROOT="${OBSERVER_CACHE:-$HOME/.cache/observer-plane}/kube"
BIN="$ROOT/$KUBE_VERSION"  # kube-apiserver and etcd-$ETCD_VERSION
APISERVER="$BIN/kube-apiserver"
ETCD="$BIN/etcd-$ETCD_VERSION"
TOKEN_USER=observer-admin  # in system:masters: everything is allowed under RBAC

log() { echo "kube.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------------------------------------ fetch (build)

go_build() {  # module-dir output package [ldflags]: a stripped binary, renamed into place when complete
  local dir=$1 out=$2 pkg=$3 ldflags="-s -w ${4:-}"
  (cd "$dir" && go build -trimpath -gcflags="$GCFLAGS" -ldflags="$ldflags" -o "$out.tmp" "$pkg") || return 1
  mv "$out.tmp" "$out"
}

# A module whose go.mod requires k8s.io/kubernetes@KUBE_VERSION and maps every staging module it replaces
# (`k8s.io/api => ./staging/src/k8s.io/api`) to the published release of the same minor and patch (v0.34.4).
build_apiserver() {
  local src="$ROOT/src/kubernetes-$KUBE_VERSION" staging="v0.${KUBE_VERSION#v1.}" gomod
  rm -rf "$src"; mkdir -p "$src"
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])') || return 1
  local replaces=() module
  local staged='s#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p'
  for module in $(sed -n "$staged" "$gomod"); do
    replaces+=("-replace=$module=$module@$staging")
  done
  ((${#replaces[@]} > 0)) || { log "no staging replace directives found in $gomod"; return 1; }
  local go_line; go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  (
    cd "$src"
    go mod init observer.local/kube-apiserver-build >/dev/null 2>&1
    go mod edit -go="$go_line" -require="k8s.io/kubernetes@$KUBE_VERSION" "${replaces[@]}"
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
    go mod tidy
  ) || return 1
  # What Kubernetes' own build stamps in, so /version answers v1.34.4 rather than v0.0.0-master.
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version
  go_build "$src" "$APISERVER" k8s.io/kubernetes/cmd/kube-apiserver \
    "-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
}

build_etcd() {
  local src="$ROOT/src/etcd-$ETCD_VERSION"
  rm -rf "$src"; mkdir -p "$src"
  (
    cd "$src"
    go mod init observer.local/etcd-build >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go mod tidy
  ) || return 1
  go_build "$src" "$ETCD" go.etcd.io/etcd/server/v3
}

cmd_fetch() {
  if [[ ${1:-} == --background ]]; then
    [[ -x $APISERVER && -x $ETCD ]] && return 0
    mkdir -p "$ROOT"
    log "building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION in the background (log: $ROOT/fetch.log)"
    setsid bash "${BASH_SOURCE[0]}" fetch </dev/null >"$ROOT/fetch.log" 2>&1 &
    # Return once it holds the lock, so a `start` right after waits for this build instead of starting its own.
    local i
    for ((i = 0; i < 100; i++)); do
      flock -n "$ROOT/.lock" true 2>/dev/null || return 0
      [[ -x $APISERVER && -x $ETCD ]] && return 0
      sleep 0.1
    done
    return 0
  fi
  command -v go >/dev/null || die "needs the Go toolchain (go) to build kube-apiserver and etcd"
  mkdir -p "$BIN"
  exec 9>"$ROOT/.lock"  # parallel test sessions build once
  flock 9
  local started=$SECONDS
  local out="$ROOT/build.log"  # go's download and build chatter: shown only when a build fails
  if [[ ! -x $ETCD ]]; then
    log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
    build_etcd >"$out" 2>&1 || { tail -n 40 "$out" >&2; die "building etcd $ETCD_VERSION failed (log: $out)"; }
  fi
  if [[ ! -x $APISERVER ]]; then
    log "building kube-apiserver $KUBE_VERSION (k8s.io/kubernetes; a cold build takes 5-10 minutes on 2 cores)"
    build_apiserver >"$out" 2>&1 ||
      { tail -n 40 "$out" >&2; die "building kube-apiserver $KUBE_VERSION failed (log: $out)"; }
  fi
  ((SECONDS - started < 2)) || log "built into $BIN in $((SECONDS - started))s"
  rm -rf "$ROOT/src"
  exec 9>&-  # release the lock: the servers `start` spawns next must not inherit (and hold) it
}

# ------------------------------------------------------------------------------------------------ start / stop

free_ports() {  # N distinct free loopback ports (all held open while chosen)
  python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))' "$1"
}

# True if the pid in file $1 is alive and one of ours for DIR (guards against pid reuse).
running() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR"
}

daemon() {  # pidfile logfile cmd...: detached, own session, stdio away from the caller
  local pidfile=$1 logfile=$2; shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # $$ and $@ are for the inner sh
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  until [[ -s $pidfile ]]; do sleep 0.05; done
}

wait_for() {  # name pidfile url [curl args...]: poll until the URL answers 2xx
  local name=$1 pidfile=$2 url=$3; shift 3
  local deadline=$((SECONDS + START_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 3 "$@" "$url" 2>/dev/null; do
    if ! running "$pidfile"; then log "$name exited; log tail:"; tail -n 40 "$DIR/$name.log" >&2; return 1; fi
    if ((SECONDS >= deadline)); then
      log "$name not ready at $url after ${START_TIMEOUT}s; log tail:"; tail -n 40 "$DIR/$name.log" >&2; return 1
    fi
    sleep 0.25
  done
}

# A CA, a serving certificate for 127.0.0.1/localhost (and the `kubernetes` service's cluster IP), a token for
# the admin identity and a key pair for signing service-account tokens. Made once per DIR.
make_credentials() {
  local pki="$DIR/pki"
  [[ -s $pki/token.csv ]] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=observer-test-ca" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # token,user,uid,"group1,group2"
    printf '%s,%s,%s,"system:masters"\n' "$(openssl rand -hex 24)" "$TOKEN_USER" "$TOKEN_USER" >token.csv
    chmod 600 ./*.key token.csv
  ) >/dev/null 2>"$DIR/openssl.log" || { cat "$DIR/openssl.log" >&2; die "making certificates failed"; }
}

write_kubeconfig() {  # port
  local token; token=$(cut -d, -f1 "$DIR/pki/token.csv")
  umask 077
  cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: observer-test
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: $TOKEN_USER
  user:
    token: $token
contexts:
- name: observer-test
  context: {cluster: observer-test, user: $TOKEN_USER}
current-context: observer-test
EOF
}

start_etcd() {
  local client=$1 peer=$2
  mkdir -p "$DIR/etcd"
  # --unsafe-no-fsync: a test server's data is disposable, and fsync dominates etcd's write latency.
  daemon "$DIR/etcd.pid" "$DIR/etcd.log" "$ETCD" \
    --name default --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd "$DIR/etcd.pid" "http://127.0.0.1:$client/health"
}

start_apiserver() {
  local port=$1 etcd_port=$2 pki="$DIR/pki"
  daemon "$DIR/kube-apiserver.pid" "$DIR/kube-apiserver.log" "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/token.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC \
    --disable-admission-plugins ServiceAccount \
    --endpoint-reconciler-type none \
    --v 1
  wait_for kube-apiserver "$DIR/kube-apiserver.pid" "https://127.0.0.1:$port/readyz" \
    --cacert "$pki/ca.crt" -H "Authorization: Bearer $(cut -d, -f1 "$pki/token.csv")"
}

cmd_start() {
  # Idempotent: a second `start` on the same DIR hands back the running server; half a pair is restarted.
  if ! { running "$DIR/etcd.pid" && running "$DIR/kube-apiserver.pid"; }; then
    cmd_fetch
    cmd_stop
    make_credentials
    local ports; read -r -a ports < <(free_ports 3)
    echo "${ports[0]}" >"$DIR/etcd.port"  # tests compact etcd through it, to provoke 410 Gone
    echo "${ports[2]}" >"$DIR/apiserver.port"
    { start_etcd "${ports[0]}" "${ports[1]}" && start_apiserver "${ports[2]}" "${ports[0]}"; } \
      || { cmd_stop; die "start failed"; }
    write_kubeconfig "${ports[2]}"
  fi
  echo "KUBECONFIG=$DIR/kubeconfig"
}

stop_one() {  # pidfile name
  running "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$2 did not exit in 30s; killing"; kill -KILL "$pid"; fi
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$1"
}

cmd_stop() {  # the API server first: it would otherwise log etcd errors while shutting down
  stop_one "$DIR/kube-apiserver.pid" kube-apiserver
  stop_one "$DIR/etcd.pid" etcd
}

main() {
  local sub=${1:-}; shift || true
  case $sub in
    fetch) cmd_fetch "$@" ;;
    start|stop)
      [[ $# -ge 1 ]] || die "usage: $0 $sub DIR"
      mkdir -p "$1"; DIR=$(cd "$1" && pwd)
      "cmd_$sub" ;;
    *) die "usage: $0 {fetch [--background]|start DIR|stop DIR}" ;;
  esac
}
main "$@"
