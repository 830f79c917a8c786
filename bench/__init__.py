"""Benchmarks for clawrap: ``python -m bench`` (see bench/README.md)."""
