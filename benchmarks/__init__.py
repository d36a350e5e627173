"""Measured figures for the toolkit: ``python -m benchmarks`` (``--quick`` for a smoke run) writes RESULTS.md."""
