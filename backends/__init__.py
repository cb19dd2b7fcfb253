"""Executors and exporters: the NumPy executor, kernels shared with CuPy through ``xp``."""
