"""The relay: the server-owned answer engine every streaming surface reuses
(docs/architecture.md). Given an Ollama stream (`relay.streams`), a target row (the
`relay.target.Target` protocol, implemented by the surface) and a channel group, it
writes one answer (`relay.engine.Answer`). It depends on `ollama_layer`, Channels and
Django only, never on an app (`chat`, `models_admin`) nor on `config`: import-linter
checks it (pyproject.toml).
"""
