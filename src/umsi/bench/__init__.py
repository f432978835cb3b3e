"""Benchmarks of the CPU data pipeline and of the batched saliency metrics (JSON-serialisable results)."""
