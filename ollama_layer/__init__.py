"""The Ollama layer: the only code that speaks HTTP to Ollama (docs/architecture.md).

`client` (the async client and its two errors), `names` (model-name rules), `hosts` (the
host pool: which host answers), `in_flight` (answers streaming per host, shared through
Redis), `failures` (Ollama's failures in words for people), `context_window` (a model's
context window, from /api/ps and /api/show). It reads Django settings and imports none
of the project's apps (`chat`, `models_admin`), nor `relay` or `config`: import-linter
checks it (pyproject.toml).
"""
