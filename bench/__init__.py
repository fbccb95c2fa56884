"""Benchmarks: each `bench_*.py` module here has a `main()` that prints its figures and ratios."""
