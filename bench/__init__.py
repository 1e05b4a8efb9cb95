"""Benchmarks of paddlehub_cls (not tests; CI does not run them). See docs/performance.md."""
