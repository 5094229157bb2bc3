#!/usr/bin/env bash
# Obtain and run a real Prometheus + Alertmanager on loopback for development and tests.
#
#   scripts/prometheus.sh install
#   eval "$(scripts/prometheus.sh start DATA_DIR [RULES_GLOB])"   # sets PROMETHEUS_URL, ALERTMANAGER_URL
#   scripts/prometheus.sh backfill DATA_DIR FILE.om
#   scripts/prometheus.sh stop DATA_DIR
#
# `start` prints exactly two lines on stdout (PROMETHEUS_URL=..., ALERTMANAGER_URL=...); all else goes to stderr.
# Binaries come from Debian's packages `prometheus` (2.42 on bookworm) and `prometheus-alertmanager` (0.25).
set -euo pipefail

log() { echo "prometheus.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian installs Alertmanager as `prometheus-alertmanager`; other sources call it `alertmanager`.
am_bin() { command -v alertmanager || command -v prometheus-alertmanager || true; }
have_all() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && [[ -n "$(am_bin)" ]] &&
    command -v curl >/dev/null && command -v python3 >/dev/null
}

cmd_install() {
  have_all && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null || die "need root or sudo for apt-get"; sudo="sudo"; }
  # Keep the packages' own services from starting: we run our own processes on free ports. A container
  # usually already has a policy-rc.d that denies starts; add a temporary one only if it does not.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added_policy=1
  fi
  local out; out=$(mktemp)
  # shellcheck disable=SC2206  # $sudo is empty or one word
  local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends
             -o DPkg::Lock::Timeout=300 install prometheus prometheus-alertmanager curl python3)
  log "installing prometheus, prometheus-alertmanager (apt)"
  # A fresh machine may have no package lists yet: update only when the first attempt fails.
  local rc=0
  "${apt[@]}" >"$out" 2>&1 || { $sudo apt-get -q update >>"$out" 2>&1 && "${apt[@]}" >>"$out" 2>&1; } || rc=$?
  [[ -n $added_policy ]] && $sudo rm -f "$policy"
  if [[ $rc -ne 0 ]] || ! have_all; then tail -n 30 "$out" >&2; rm -f "$out"; die "apt install failed"; fi
  rm -f "$out"
  log "installed: $(prometheus --version 2>&1 | head -n1); $("$(am_bin)" --version 2>&1 | head -n1)"
}

# Two distinct free loopback ports (both held open while chosen, so they differ).
free_ports() {
  python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))'
}

# True if the pid in file $1 is alive and is one of our processes for DATA_DIR (guards against pid reuse).
running() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DATA"
}

# Start "$@" detached (own session, stdio away from the caller so `$(...)` / pipes do not wait on it).
daemon() {
  local pidfile=$1 logfile=$2; shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # $$ and $@ are for the inner sh
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  until [[ -s $pidfile ]]; do sleep 0.05; done
}

wait_ready() {  # name url: poll /-/ready for 60 s; on failure show the log tail
  local deadline=$((SECONDS + 60)) why="not ready after 60s"
  until curl -fsS -o /dev/null --max-time 2 "$2/-/ready" 2>/dev/null; do
    running "$DATA/$1.pid" || why="exited"
    if [[ $why == exited ]] || ((SECONDS >= deadline)); then
      log "$1 at $2 $why; log tail:"; tail -n 40 "$DATA/$1.log" >&2; return 1
    fi
    sleep 0.2
  done
}

write_configs() {
  local rules_glob=${1:-} am_port=$2
  mkdir -p "$DATA/rules" "$DATA/tsdb" "$DATA/alertmanager"
  cat >"$DATA/alertmanager.yml" <<'EOF'
route:
  receiver: "null"
receivers:
  - name: "null"
EOF
  {
    cat <<EOF
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $DATA/rules/*.yml
EOF
    [[ -n $rules_glob ]] && echo "  - $rules_glob"
    cat <<EOF
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$am_port"]
EOF
  } >"$DATA/prometheus.base.yml"
  promtool check config "$DATA/prometheus.base.yml" >"$DATA/promtool-check.log" 2>&1 \
    || { cat "$DATA/promtool-check.log" >&2; die "invalid prometheus.yml (or rule files)"; }
  # Accept samples up to 30d old (remote write of late data) when this version knows the setting (2.39+).
  { cat "$DATA/prometheus.base.yml"
    printf 'storage:\n  tsdb:\n    out_of_order_time_window: 30d\n'; } >"$DATA/prometheus.yml"
  if ! promtool check config "$DATA/prometheus.yml" >/dev/null 2>&1; then
    log "out_of_order_time_window not accepted by this Prometheus; running without it"
    cp "$DATA/prometheus.base.yml" "$DATA/prometheus.yml"
  fi
}

# --rules.alert.resend-delay=1s (default 1m): after a start or a /-/reload, Prometheus knows no Alertmanager until
# its discovery manager's next 5 s tick. Alerts firing in that window are dropped and, with the default, not resent
# for a minute; with 1s they reach Alertmanager on the next rule evaluation.
start_prometheus() {  # uses the port recorded in DATA/prometheus.port
  local port; port=$(cat "$DATA/prometheus.port")
  daemon "$DATA/prometheus.pid" "$DATA/prometheus.log" prometheus \
    --config.file="$DATA/prometheus.yml" \
    --web.listen-address="127.0.0.1:$port" \
    --web.enable-remote-write-receiver \
    --web.enable-lifecycle \
    --storage.tsdb.path="$DATA/tsdb" \
    --storage.tsdb.retention.time=30d \
    --rules.alert.resend-delay=1s
  wait_ready prometheus "http://127.0.0.1:$port"
}

cmd_start() {
  if [[ -n ${PROMETHEUS_URL:-} ]]; then  # an external server: just check it and hand it back
    curl -fsS -o /dev/null --max-time 5 "$PROMETHEUS_URL/-/ready" || die "$PROMETHEUS_URL does not answer"
    if [[ -n ${ALERTMANAGER_URL:-} ]]; then
      curl -fsS -o /dev/null --max-time 5 "$ALERTMANAGER_URL/-/ready" || die "$ALERTMANAGER_URL does not answer"
    else
      log "PROMETHEUS_URL set without ALERTMANAGER_URL; printing it empty"
    fi
    echo "PROMETHEUS_URL=$PROMETHEUS_URL"; echo "ALERTMANAGER_URL=${ALERTMANAGER_URL:-}"
    return
  fi
  cmd_install
  local rules_glob=${1:-}
  [[ -z $rules_glob || $rules_glob == /* ]] || rules_glob="$PWD/$rules_glob"
  # Idempotent: a second `start` on the same DATA_DIR hands back the running pair; half a pair is restarted.
  if ! { running "$DATA/prometheus.pid" && running "$DATA/alertmanager.pid"; }; then
    cmd_stop
    local ports; read -r -a ports < <(free_ports)
    echo "${ports[0]}" >"$DATA/prometheus.port"
    echo "${ports[1]}" >"$DATA/alertmanager.port"
    write_configs "$rules_glob" "$(cat "$DATA/alertmanager.port")"
    # --cluster.listen-address= disables HA gossip (it would otherwise listen on 0.0.0.0:9094).
    daemon "$DATA/alertmanager.pid" "$DATA/alertmanager.log" "$(am_bin)" \
      --config.file="$DATA/alertmanager.yml" \
      --storage.path="$DATA/alertmanager" \
      --web.listen-address="127.0.0.1:$(cat "$DATA/alertmanager.port")" \
      --cluster.listen-address=
    # Never leave half a pair running when either fails to come up.
    { start_prometheus && wait_ready alertmanager "http://127.0.0.1:$(cat "$DATA/alertmanager.port")"; } \
      || { cmd_stop; die "start failed"; }
  fi
  echo "PROMETHEUS_URL=http://127.0.0.1:$(cat "$DATA/prometheus.port")"
  echo "ALERTMANAGER_URL=http://127.0.0.1:$(cat "$DATA/alertmanager.port")"
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

cmd_stop() {  # both at once: each takes 1-2 s to shut down
  stop_one "$DATA/prometheus.pid" prometheus & local p=$!
  stop_one "$DATA/alertmanager.pid" alertmanager & local a=$!
  wait "$p" && wait "$a"
}

# Backfill: promtool writes finished blocks into the TSDB directory (each is built in a *.tmp-for-creation
# directory and renamed, so a running Prometheus never sees a half-written block). Prometheus 2.x does not load
# new block directories on demand -- no API or /-/reload does that; its TSDB loop rescans the directory only
# once a minute (db.reloadBlocks), so the data would appear after 0-60 s. To make it queryable promptly and
# deterministically we restart Prometheus on the same port (WAL replay keeps remote-written data); that takes
# about a second on a small TSDB. Samples older than the 30d retention are dropped at the next compaction.
cmd_backfill() {
  local file=${1:?usage: backfill DATA_DIR FILE.om}
  cmd_install
  mkdir -p "$DATA/tsdb"
  promtool tsdb create-blocks-from openmetrics --quiet "$file" "$DATA/tsdb" >&2
  if running "$DATA/prometheus.pid"; then
    stop_one "$DATA/prometheus.pid" prometheus
    start_prometheus
  fi
}

main() {
  local sub=${1:-}; shift || true
  case $sub in
    install) cmd_install ;;
    start|stop|backfill)
      [[ $# -ge 1 ]] || die "usage: $0 $sub DATA_DIR ..."
      mkdir -p "$1"; DATA=$(cd "$1" && pwd); shift
      "cmd_$sub" "$@" ;;
    *) die "usage: $0 {install|start DATA_DIR [RULES_GLOB]|stop DATA_DIR|backfill DATA_DIR FILE.om}" ;;
  esac
}
main "$@"
