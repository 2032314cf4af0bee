"""Architecture corpora: each yields a ``datasets.Dataset`` of traced networks."""

from .common import ARCHITECTURE_FEATURES, architecture_row, trace_factory

__all__ = ["ARCHITECTURE_FEATURES", "architecture_row", "trace_factory"]
