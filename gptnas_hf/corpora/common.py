"""What every architecture corpus shares: one row per network, traced without computing."""

from __future__ import annotations

from typing import Sequence

import datasets

from ..encoding import TracedLayer

ARCHITECTURE_FEATURES = datasets.Features(
    {
        "name": datasets.Value("string"),
        "source": datasets.Value("string"),
        "layers": datasets.Sequence(datasets.Value("string")),
        "types": datasets.Sequence(datasets.Value("string")),
        "blocks": datasets.Sequence(datasets.Value("string")),
        "block_index": datasets.Sequence(datasets.Value("int32")),
    }
)


def architecture_row(name: str, source: str, layers: Sequence[TracedLayer]) -> dict:
    """One corpus row: the Table-1 texts, types and block labels of a traced network."""
    return {
        "name": name,
        "source": source,
        "layers": [layer.text for layer in layers],
        "types": [layer.type for layer in layers],
        "blocks": [layer.block for layer in layers],
        "block_index": [layer.block_index for layer in layers],
    }
