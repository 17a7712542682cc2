#!/usr/bin/env bash
# Sets up everything (first run only) and serves the app on http://127.0.0.1:8000.
# Configuration comes from the environment: see .env.example (a .env file is read too).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
[ -f .env ] && { set -a; . ./.env; set +a; }
if [ -z "${SECRET_KEY:-}" ]; then
  # A key of its own for this checkout, made once, so sessions survive restarts.
  [ -f .secret_key ] || .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(50))" > .secret_key
  SECRET_KEY=$(cat .secret_key)
  export SECRET_KEY
fi
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
# The Ollama address(es) without user:password@, query or fragment, where credentials hide.
ollama=$(printf '%s' "${OLLAMA_URLS:-${OLLAMA_URL:-http://localhost:11434}}" | sed -E 's#//[^/@,]*@#//#g; s#[?#][^,]*##g')
echo "Open http://${HOST:-127.0.0.1}:${PORT:-8000}/ (Ollama: ${ollama})"
exec .venv/bin/daphne -b "${HOST:-127.0.0.1}" -p "${PORT:-8000}" config.asgi:application
