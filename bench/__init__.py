"""Benchmarks for the Nape firmware (run from the repository root, e.g.
``python -m bench.firmware_accuracy`` or ``python -m bench.firmware_cost``)."""
