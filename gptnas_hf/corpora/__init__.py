"""Architecture corpora: each yields a ``datasets.Dataset`` of traced networks."""

from ..encoding import trace_factory
from .common import ARCHITECTURE_FEATURES, architecture_row
from .nasbench101 import nasbench101_corpus
from .zoo import ZOO_FAMILIES, ZOO_NETWORKS, zoo_corpus

__all__ = ["ARCHITECTURE_FEATURES", "ZOO_FAMILIES", "ZOO_NETWORKS", "architecture_row", "nasbench101_corpus",
           "trace_factory", "zoo_corpus"]
