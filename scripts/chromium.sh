#!/usr/bin/env bash
# Install a headless Chromium and its WebDriver from Debian's packages for the console's browser tests.
#
#   scripts/chromium.sh install      # idempotent; prints nothing when both are already there
#   scripts/chromium.sh paths        # prints CHROMIUM_BIN=... and CHROMEDRIVER_BIN=... (two lines)
#
# Debian's `chromium` and `chromium-driver` are the same build, so the driver always matches the browser; the
# tests never download a browser (devservers/browser.py points Selenium at these two files).
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

chromium_bin() { command -v chromium || command -v chromium-browser || true; }
driver_bin() { command -v chromedriver || { [[ -x /usr/bin/chromedriver ]] && echo /usr/bin/chromedriver; } || true; }
have_all() { [[ -n "$(chromium_bin)" && -n "$(driver_bin)" ]]; }

cmd_install() {
  have_all && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null || die "need root or sudo for apt-get"; sudo="sudo"; }
  local out; out=$(mktemp)
  # shellcheck disable=SC2206  # $sudo is empty or one word
  local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends
             -o DPkg::Lock::Timeout=300 install chromium chromium-driver fonts-dejavu-core)
  log "installing chromium, chromium-driver (apt)"
  # A fresh machine may have no package lists yet: update only when the first attempt fails.
  local rc=0
  "${apt[@]}" >"$out" 2>&1 || { $sudo apt-get -q update >>"$out" 2>&1 && "${apt[@]}" >>"$out" 2>&1; } || rc=$?
  if [[ $rc -ne 0 ]] || ! have_all; then tail -n 30 "$out" >&2; rm -f "$out"; die "apt install failed"; fi
  rm -f "$out"
  log "installed: $("$(chromium_bin)" --version 2>/dev/null | head -n1)"
}

cmd_paths() {
  have_all || die "chromium or chromedriver missing: run scripts/chromium.sh install"
  echo "CHROMIUM_BIN=$(chromium_bin)"
  echo "CHROMEDRIVER_BIN=$(driver_bin)"
}

case "${1:-}" in
  install) cmd_install ;;
  paths) cmd_paths ;;
  *) die "usage: scripts/chromium.sh install|paths" ;;
esac
