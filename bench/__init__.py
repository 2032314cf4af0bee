"""Benchmarks: each runs as ``python -m bench.NAME`` and writes ``bench/results/NAME.{json,png}``."""
