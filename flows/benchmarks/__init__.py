"""Benchmarks: applications over the library and the flows (see :mod:`flows.benchmarks.cli`)."""
