#!/usr/bin/env bash
# Build the `helm` CLI from the Go module proxy, cached, for the chart tests (tests/integration/test_charts_*.py).
#
#   scripts/helm.sh fetch                 build helm into the cache (idempotent); prints nothing on stdout
#   scripts/helm.sh fetch --background    the same, detached (`make servers`: the build overlaps the tests before
#                                         the chart tests; `path` and devservers/helm.py wait for it on the lock)
#   scripts/helm.sh path                  build if needed (waiting for a running build), then print the binary's path
#
# Why a build: Helm publishes no binaries to any registry reachable here, but its source is a Go module
# (helm.sh/helm/v4) whose go.mod has no replace directives, so a throwaway module that requires it builds
# cmd/helm with its own dependency pins. Builds use -trimpath and no symbol tables; unlike kube-apiserver, helm
# is a small build, so it keeps the optimiser on. The Go build and module caches are the usual ones.
#
# Environment:
#   HELM_VERSION     helm.sh/helm/v4 release to build (default v4.3.2)
#   OBSERVER_CACHE   cache root (default ~/.cache/observer-plane); the binary goes to helm/<version>/helm
#
# Progress and errors go to stderr; only `path` writes to stdout.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.2}
ROOT="${OBSERVER_CACHE:-$HOME/.cache/observer-plane}/helm"
HELM="$ROOT/$HELM_VERSION/helm"

log() { echo "helm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

build_helm() {  # a throwaway module requiring helm.sh/helm/v4@HELM_VERSION; builds its cmd/helm
  local src="$ROOT/src/helm-$HELM_VERSION" v=helm.sh/helm/v4/internal/version
  rm -rf "$src"; mkdir -p "$src"
  (
    cd "$src"
    go mod init observer.local/helm-build >/dev/null 2>&1
    go mod edit -require="helm.sh/helm/v4@$HELM_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' >tools.go
    go mod tidy
    # What Helm's own Makefile stamps in, so `helm version` answers the release rather than "main".
    go build -trimpath -ldflags="-s -w -X $v.version=$HELM_VERSION" -o "$HELM.tmp" helm.sh/helm/v4/cmd/helm
  ) || return 1
  mv "$HELM.tmp" "$HELM"
}

cmd_fetch() {
  if [[ ${1:-} == --background ]]; then
    [[ -x $HELM ]] && return 0
    mkdir -p "$ROOT"
    log "building helm $HELM_VERSION in the background (log: $ROOT/fetch.log)"
    setsid bash "${BASH_SOURCE[0]}" fetch </dev/null >"$ROOT/fetch.log" 2>&1 &
    # Return once it holds the lock, so a `path` right after waits for this build instead of starting its own.
    local i
    for ((i = 0; i < 100; i++)); do
      flock -n "$ROOT/.lock" true 2>/dev/null || return 0
      [[ -x $HELM ]] && return 0
      sleep 0.1
    done
    return 0
  fi
  [[ -x $HELM ]] && return 0
  command -v go >/dev/null || die "needs the Go toolchain (go) to build helm"
  mkdir -p "$(dirname "$HELM")"
  exec 9>"$ROOT/.lock"  # parallel test sessions build once
  flock 9
  local started=$SECONDS
  local out="$ROOT/build.log"  # go's download and build chatter: shown only when a build fails
  if [[ ! -x $HELM ]]; then
    log "building helm $HELM_VERSION (helm.sh/helm/v4; a cold build takes a few minutes on 2 cores)"
    build_helm >"$out" 2>&1 || { tail -n 40 "$out" >&2; die "building helm $HELM_VERSION failed (log: $out)"; }
    log "built $HELM in $((SECONDS - started))s"
  fi
  rm -rf "$ROOT/src"
  exec 9>&-
}

main() {
  local sub=${1:-}; shift || true
  case $sub in
    fetch) cmd_fetch "$@" ;;
    path) cmd_fetch; echo "$HELM" ;;
    *) die "usage: $0 {fetch [--background]|path}" ;;
  esac
}
main "$@"
