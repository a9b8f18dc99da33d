"""ctxscale: a reproducible replication of context-aware scaling laws (arXiv 2510.14919)."""

__version__ = "0.1.0"
