"""Latency benchmark of the relative pose estimator backends: ``hpe-bench``."""
