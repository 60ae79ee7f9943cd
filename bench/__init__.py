"""Benchmarks: run against a live stack (make up), write their figures to bench/results/."""
