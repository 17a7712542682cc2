#!/usr/bin/env bash
# Sets up everything (first run only) and serves the app on http://127.0.0.1:8000.
# Configuration comes from the environment: see .env.example (a .env file is read too).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
# Whatever this server writes from here on (database, uploads) is for this account only;
# the app makes its secrets private by itself too (config/private_files.py).
umask 077
[ -f .env ] && { set -a; . ./.env; set +a; }
if [ -z "${SECRET_KEY:-}" ]; then
  # A key of its own for this checkout, made once (0600), so sessions survive restarts.
  SECRET_KEY=$(.venv/bin/python -m config.private_files secret-key .secret_key)
  export SECRET_KEY
fi
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
# The Ollama address(es) without user:password@, query or fragment, where credentials hide.
ollama=$(printf '%s' "${OLLAMA_URLS:-${OLLAMA_URL:-http://localhost:11434}}" | sed -E 's#//[^/@,]*@#//#g; s#[?#][^,]*##g')
echo "Open http://${HOST:-127.0.0.1}:${PORT:-8000}/ (Ollama: ${ollama})"
proxy_headers=()
# Behind the reverse proxy of docs/deployment.md the client's address is the proxy's
# X-Forwarded-For; anyone reaching Daphne directly could forge it, hence only then.
behind_proxy="${BEHIND_PROXY:-false}"
case "${behind_proxy,,}" in 1 | true | yes | on) proxy_headers=(--proxy-headers) ;; esac
exec .venv/bin/daphne -b "${HOST:-127.0.0.1}" -p "${PORT:-8000}" "${proxy_headers[@]}" config.asgi:application
