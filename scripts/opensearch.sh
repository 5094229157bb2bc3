#!/usr/bin/env bash
# Obtain and run a real OpenSearch node on loopback, for development and tests (ARCHITECTURE.md section 6).
#
#   scripts/opensearch.sh fetch              download + unpack the distribution into the cache (idempotent)
#   scripts/opensearch.sh start [DATA_DIR]   start a node; prints one line on stdout: OPENSEARCH_URL=http://127.0.0.1:PORT
#   scripts/opensearch.sh stop  [DATA_DIR]   stop the node started from DATA_DIR
#
# Environment:
#   OPENSEARCH_URL        use this server instead of starting one (start only checks that it answers)
#   OPENSEARCH_VERSION    pin one version (default: 3.3.2 if a Java 21+ is found, else 2.19.4)
#   OPENSEARCH_JAVA_HOME  JDK to run the node with (default: searched under /usr/lib/jvm and /opt)
#   OPENSEARCH_HEAP       heap size (default 512m)
#   OPENSEARCH_START_TIMEOUT  seconds to wait for a green/yellow cluster (default 120)
#   OBSERVER_CACHE        cache root (default ~/.cache/observer-plane); the distribution goes under opensearch/
#
# Only the line for `eval` goes to stdout; all progress and errors go to stderr.
set -euo pipefail

V3=3.3.2       # needs Java 21+
V2=2.19.4      # runs on Java 11..23 (it still uses the SecurityManager, which Java 24 removed)
COORD=org.opensearch.distribution.integ-test-zip:opensearch
CACHE="${OBSERVER_CACHE:-$HOME/.cache/observer-plane}/opensearch"
DEFAULT_DIR="${TMPDIR:-/tmp}/observer-opensearch-$(id -u)"
HEAP="${OPENSEARCH_HEAP:-512m}"
START_TIMEOUT=${OPENSEARCH_START_TIMEOUT:-120}  # seconds

log() { echo "opensearch.sh: $*" >&2; }
die() { log "$*"; exit 1; }

java_major() {  # JAVA_HOME -> major version, e.g. 17 or 25
  "$1/bin/java" -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p'
}

# Print a JDK home whose major version is within [min, max], preferring the newest.
find_java() {
  local min=$1 max=$2 best="" best_v=0 j v
  for j in ${OPENSEARCH_JAVA_HOME:-} ${JAVA_HOME:-} /usr/lib/jvm/* /opt/*/ /opt/java/*; do
    j=${j%/}
    [[ -x $j/bin/java ]] || continue
    v=$(java_major "$j") || continue
    [[ -n $v ]] || continue
    # An explicitly given OPENSEARCH_JAVA_HOME wins whenever it fits.
    if [[ $j == "${OPENSEARCH_JAVA_HOME:-}" ]] && ((v >= min && v <= max)); then echo "$j"; return 0; fi
    if ((v >= min && v <= max && v > best_v)); then best=$j best_v=$v; fi
  done
  [[ -n $best ]] && echo "$best"
}

java_for() {  # version -> JDK home suitable for it
  case $1 in
    3.*) find_java 21 99 ;;
    *)   find_java 11 23 ;;
  esac
}

# Download and unpack one version into $CACHE/opensearch-VERSION (no-op if already there).
fetch_version() {
  local v=$1 home="$CACHE/opensearch-$1"
  [[ -x $home/bin/opensearch ]] && return 0
  mkdir -p "$CACHE"
  local zip="$CACHE/opensearch-$v.zip"
  if [[ ! -s $zip ]]; then
    log "downloading $COORD:$v:zip from Maven Central"
    # Maven 3.8 prints colour codes even with -q -B; strip them.
    mvn -q -B dependency:copy -Dartifact="$COORD:$v:zip" -DoutputDirectory="$CACHE" 2>&1 \
      | sed 's/\x1b\[[0-9;]*m//g' >&2 || return 1
  fi
  # Unpack beside the target and rename, so an interrupted run never leaves a half tree behind.
  local tmp
  tmp=$(mktemp -d "$CACHE/.unzip.XXXXXX")
  unzip -q "$zip" -d "$tmp" || { rm -rf "$tmp"; return 1; }
  mv "$tmp/opensearch-$v" "$home" || return 1
  rm -rf "$tmp" "$zip"  # Maven keeps its own copy in ~/.m2
  log "unpacked $home"
}

# Print the version to use, fetching it if needed: 3.x when a Java 21+ exists, else (or on failure) 2.19.x.
cmd_fetch() {
  mkdir -p "$CACHE"
  # Serialise concurrent fetches (e.g. parallel test sessions) on one lock.
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -n ${OPENSEARCH_VERSION:-} ]]; then
    fetch_version "$OPENSEARCH_VERSION" || die "could not fetch OpenSearch $OPENSEARCH_VERSION"
    echo "$OPENSEARCH_VERSION"
    return
  fi
  if java_for "$V3" >/dev/null && fetch_version "$V3"; then echo "$V3"; return; fi
  log "OpenSearch $V3 unavailable (no Java 21+ or download failed); using $V2"
  fetch_version "$V2" || die "could not fetch OpenSearch $V2 either"
  echo "$V2"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

health_ok() {  # url -> success when cluster health is green or yellow
  curl -fsS -m 3 "$1/_cluster/health" 2>/dev/null | grep -qE '"status":"(green|yellow)"'
}

alive() { [[ -f $1/opensearch.pid ]] && kill -0 "$(cat "$1/opensearch.pid")" 2>/dev/null; }

# Start VERSION with DATA_DIR; on success prints the URL on stdout.
start_node() {
  local v=$1 dir=$2 home="$CACHE/opensearch-$1" java
  java=$(java_for "$v") || { log "no suitable Java for OpenSearch $v"; return 1; }
  local http_port transport_port url
  http_port=$(free_port)
  transport_port=$(free_port)
  url="http://127.0.0.1:$http_port"
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  # A private copy of config/, so concurrent nodes never share settings or the cache tree.
  rm -rf "$dir/config"
  cp -r "$home/config" "$dir/config"
  # jvm.options writes the GC log, heap dumps and crash files relative to the install dir; move them here.
  sed -i -e "s#file=logs/#file=$dir/logs/#" -e "s#ErrorFile=logs/#ErrorFile=$dir/logs/#" \
    -e "s#HeapDumpPath=data#HeapDumpPath=$dir/data#" "$dir/config/jvm.options"
  cat >"$dir/config/opensearch.yml" <<EOF
cluster.name: observer-dev
node.name: dev-node
path.data: $dir/data
path.logs: $dir/logs
network.host: 127.0.0.1
http.port: $http_port
transport.port: $transport_port
discovery.type: single-node
# Dev machines are often nearly full; do not let that block shard allocation.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  # OpenSearch refuses to run as root (it asks the kernel for its euid). Dev and CI machines here are root, so
  # run it in a user namespace that shows it a plain uid; files it writes are still owned by the caller.
  local as_user=()
  if [[ $(id -u) == 0 ]]; then
    unshare --user --map-user=1000 --map-group=1000 true 2>/dev/null \
      || { log "running as root and user namespaces are unavailable; run as a normal user"; return 1; }
    as_user=(unshare --user --map-user=1000 --map-group=1000)
  fi
  log "starting OpenSearch $v on $url with $java (data in $dir)"
  # setsid + all fds redirected: the node must not hold the caller's pipe open (eval "$(...)", subprocess).
  OPENSEARCH_JAVA_HOME=$java OPENSEARCH_PATH_CONF="$dir/config" OPENSEARCH_TMPDIR="$dir/tmp" \
    OPENSEARCH_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP" \
    setsid "${as_user[@]}" "$home/bin/opensearch" </dev/null >>"$dir/logs/console.log" 2>&1 &
  echo $! >"$dir/opensearch.pid"   # setsid, unshare and bin/opensearch all exec, so this is the JVM's pid
  local t0=$SECONDS
  until health_ok "$url"; do
    if ! alive "$dir" || ((SECONDS - t0 > START_TIMEOUT)); then
      log "OpenSearch $v did not come up within $((SECONDS - t0)) s; last log lines:"
      tail -n 40 "$dir/logs/console.log" >&2 || true
      stop_node "$dir"
      return 1
    fi
    sleep 0.5
  done
  # A single node can hold no replicas; without this every new index stays yellow. As a node setting in
  # opensearch.yml it is accepted but ignored, so it goes into the cluster's persistent settings.
  curl -fsS -m 10 -XPUT "$url/_cluster/settings" -H 'Content-Type: application/json' \
    -d '{"persistent":{"cluster.default_number_of_replicas":0}}' >/dev/null \
    || log "could not set cluster.default_number_of_replicas=0; new indices will be yellow"
  echo "$url" >"$dir/url"
  log "OpenSearch $v is up after $((SECONDS - t0)) s"
  echo "$url"
}

cmd_start() {
  local dir url v
  if [[ -n ${OPENSEARCH_URL:-} ]]; then
    health_ok "$OPENSEARCH_URL" || die "OPENSEARCH_URL=$OPENSEARCH_URL does not answer with a green/yellow cluster"
    echo "OPENSEARCH_URL=$OPENSEARCH_URL"
    return
  fi
  mkdir -p "${1:-$DEFAULT_DIR}"
  dir=$(cd "${1:-$DEFAULT_DIR}" && pwd)
  # Idempotent: a node already running from this dir is reused.
  if alive "$dir" && [[ -f $dir/url ]] && health_ok "$(cat "$dir/url")"; then
    echo "OPENSEARCH_URL=$(cat "$dir/url")"
    return
  fi
  v=$(cmd_fetch)
  local fresh=false
  [[ -n $(ls -A "$dir/data" 2>/dev/null) ]] || fresh=true
  if url=$(start_node "$v" "$dir"); then
    echo "OPENSEARCH_URL=$url"
    return
  fi
  # 3.x failed to start: fall back to 2.19.x unless the caller pinned a version.
  [[ -z ${OPENSEARCH_VERSION:-} && $v == 3.* ]] || die "OpenSearch $v failed to start"
  # 2.x refuses a data dir a 3.x node has written to; only throw away what the failed attempt wrote.
  $fresh || die "OpenSearch $v failed to start; $dir/data holds earlier data, so not falling back to $V2"
  log "falling back to OpenSearch $V2"
  v=$(OPENSEARCH_VERSION=$V2 cmd_fetch)
  rm -rf "$dir/data"
  url=$(start_node "$v" "$dir") || die "OpenSearch $v failed to start"
  echo "OPENSEARCH_URL=$url"
}

stop_node() {
  local dir=$1 pid i
  [[ -f $dir/opensearch.pid ]] || { log "no pid file in $dir; nothing to stop"; return 0; }
  pid=$(cat "$dir/opensearch.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM for 30 s; killing"; kill -KILL "$pid"; fi
    log "stopped OpenSearch (pid $pid)"
  fi
  rm -f "$dir/opensearch.pid" "$dir/url"
}

cmd_stop() {
  [[ -d ${1:-$DEFAULT_DIR} ]] || { log "no such dir ${1:-$DEFAULT_DIR}; nothing to stop"; return 0; }
  stop_node "$(cd "${1:-$DEFAULT_DIR}" && pwd)"
}

case "${1:-}" in
  fetch) cmd_fetch >/dev/null ;;
  start) shift; cmd_start "$@" ;;
  stop)  shift; cmd_stop "$@" ;;
  *) die "usage: $0 fetch | start [DATA_DIR] | stop [DATA_DIR]" ;;
esac
