"""Benchmarks: ``python -m benchmarks NAME [--json PATH]``; each prints a table."""
