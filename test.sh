#!/usr/bin/env bash
# Sets up everything the tests need (first run only), checks the import rules between
# the packages (lint-imports) and runs the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -k socket
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh dev
if [ ! -x /usr/bin/chromium ]; then
  # The browser tests drive Debian's Chromium (Playwright's own download is not used).
  echo "Installing Chromium for the browser tests…"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  else echo "Please install Chromium (apt-get install chromium), then run this again." >&2; exit 1
  fi
fi
# Who may import whom (contracts in pyproject.toml, docs/architecture.md): a broken rule
# stops here, before the tests, with the imports that break it.
if ! contracts=$(.venv/bin/lint-imports --no-logo --no-cache 2>&1); then
  echo "$contracts" >&2
  exit 1
fi
echo "$contracts" | grep -E '^Contracts: '
exec .venv/bin/python -m pytest "$@"
