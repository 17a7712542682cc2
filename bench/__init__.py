"""Benchmarks (not tests): the relay's cost and latency against a bare asyncio relay, and
page speed. One entry point: `.venv/bin/python -m bench.run` (see docs/benchmarks.md).

Never collected by pytest (testpaths = tests) and never run by CI.
"""
