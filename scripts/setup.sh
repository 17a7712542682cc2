#!/usr/bin/env bash
# Creates .venv, installs the Python and npm dependencies and copies the browser
# libraries into static/vendor/. Safe to run again: it only does what is missing.
# Usage: scripts/setup.sh [dev]   (dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

want=requirements.txt
[ "${1:-}" = dev ] && want=requirements-dev.txt

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian ships venv separately.
    rm -rf .venv
    echo "Installing python3-venv (Debian packages venv separately)…"
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv >/dev/null \
      || { echo "Please install python3-venv, then run this again." >&2; exit 1; }
    python3 -m venv .venv
  fi
fi

# Reinstall only when the requirements changed since the last successful install.
stamp=.venv/.installed-$(cat requirements.txt "$want" | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$want"
  touch "$stamp"
fi

command -v npm >/dev/null || { echo "Node.js and npm are needed (apt-get install nodejs npm)." >&2; exit 1; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/copy-vendor.sh
