#!/usr/bin/env bash
# What the browser tests (tests/browser) need: Debian's chromium, installed here when missing
# (as root, through apt-get; skipped when it is there), and the pinned playwright-core and
# axe-core from tests/browser/package-lock.json (npm ci; skipped when already installed).
# Elsewhere it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x "$CHROMIUM" ]; then
  if can_apt; then
    echo "browser-setup: installing Debian's chromium" >&2
    apt_install chromium fonts-dejavu-core
    if [ ! -x "$CHROMIUM" ]; then
      echo "browser-setup: installed Debian's chromium, but $CHROMIUM is still missing (set CHROMIUM)" >&2
      exit 1
    fi
  else
    echo "browser-setup: the browser tests need $CHROMIUM (Debian: apt-get install chromium), or CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if can_apt; then
    echo "browser-setup: installing node and npm" >&2
    apt_install nodejs npm
  else
    echo "browser-setup: the browser tests need node (>= 18) and npm" >&2
    exit 1
  fi
fi
# npm ci again only when the lock changed since the last install (a copy of it is the stamp).
stamp=tests/browser/node_modules/.beacon-lock.json
if ! cmp -s tests/browser/package-lock.json "$stamp"; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/browser/package-lock.json "$stamp"
fi
