"""Tidings benchmarks: each prints one JSON document on stdout (`python -m bench --help`)."""
