"""The pre-training corpus: NAS-Bench-101 networks (paper, section 4.1).

NAS-Bench-101 (Ying et al., 2019; https://github.com/google-research/nasbench) is a space of
cells: DAGs of at most 7 vertices and 9 edges whose interior vertices are a 3x3 or 1x1
conv-bn-relu or a 3x3 max-pool. Every cell is stacked into the same skeleton network (a stem,
3 stacks of 3 cells with max-pool down-sampling in between, global average pooling and a
classifier) and was trained 3 times on CIFAR-10. The paper pre-trains its GPT on the 295,889
of the 423,624 unique cells whose mean validation accuracy is at least 90%.

This module holds :func:`nasbench101_corpus`: one traced network per cell as a
``datasets.Dataset`` (``source`` :data:`SOURCE`). It ties together, and re-exports under
their names here:

* :mod:`.nasbench101_cells`: the cells (:class:`CellSpec`, its hash, :func:`sample_cells`);
* :mod:`.nasbench101_network`: the network of a cell (:class:`NASBench101Network`,
  :func:`trace_cell`);
* :mod:`.nasbench101_tfrecord`: the official ``nasbench_only108.tfrecord``
  (:func:`read_nasbench101` and the TFRecord and protobuf layers under it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

import datasets
from tqdm.auto import tqdm

from .common import ARCHITECTURE_FEATURES, architecture_row
from .nasbench101_cells import (
    AVAILABLE_OPS,
    CONV1X1,
    CONV3X3,
    INPUT,
    MAX_EDGES,
    MAX_VERTICES,
    MAXPOOL3X3,
    NUM_UNIQUE_CELLS,
    OUTPUT,
    CellSpec,
    hash_module,
    is_valid_cell,
    sample_cells,
)
from .nasbench101_network import NASBench101Cell, NASBench101Network, compute_vertex_channels, trace_cell
from .nasbench101_tfrecord import (
    CorruptRecordError,
    EvaluationData,
    ModelMetrics,
    NASBenchRecord,
    crc32c,
    masked_crc32c,
    read_nasbench101,
    read_nasbench_records,
    read_tfrecords,
    write_nasbench_records,
    write_tfrecords,
)

__all__ = [
    "INPUT",
    "OUTPUT",
    "CONV3X3",
    "CONV1X1",
    "MAXPOOL3X3",
    "AVAILABLE_OPS",
    "MAX_VERTICES",
    "MAX_EDGES",
    "NUM_UNIQUE_CELLS",
    "SOURCE",
    "CellSpec",
    "hash_module",
    "is_valid_cell",
    "sample_cells",
    "compute_vertex_channels",
    "NASBench101Cell",
    "NASBench101Network",
    "trace_cell",
    "crc32c",
    "masked_crc32c",
    "CorruptRecordError",
    "read_tfrecords",
    "write_tfrecords",
    "EvaluationData",
    "ModelMetrics",
    "NASBenchRecord",
    "read_nasbench_records",
    "write_nasbench_records",
    "read_nasbench101",
    "nasbench101_corpus",
]

#: the ``source`` column of the corpus's rows
SOURCE = "nasbench101"


# -- the corpus ---------------------------------------------------------------------------------
def _generate_rows(shards, input_shape, network_kwargs, progress):
    """``datasets`` generator. ``shards`` is a list of tuples of ``(name, matrix, ops)``;
    ``datasets`` calls this once per shard (one shard per process with ``num_proc``)."""
    cells = [cell for shard in shards for cell in shard]
    for name, matrix, ops in tqdm(cells, desc="tracing NAS-Bench-101", unit=" cells", disable=not progress):
        spec = CellSpec(matrix, ops)
        yield architecture_row(name, SOURCE, trace_cell(spec, input_shape, **network_kwargs))


def _fingerprint(cells, input_shape, network_kwargs) -> str:
    """What the rows depend on: the cells, the input shape, the network and the tracer."""
    digest = hashlib.md5()
    here = Path(__file__).resolve()
    sources = ("nasbench101_cells.py", "nasbench101_network.py", "common.py")
    for source in (here, *(here.parent / name for name in sources), here.parent.parent / "encoding.py"):
        digest.update(source.read_bytes() if source.exists() else b"")
    digest.update(repr((tuple(input_shape), sorted(network_kwargs.items()))).encode())
    for cell in cells:
        digest.update(repr(cell).encode())
    return "nasbench101-" + digest.hexdigest()


def nasbench101_corpus(
    specs: Iterable[CellSpec] | None = None,
    *,
    tfrecord: str | os.PathLike | None = None,
    num_cells: int = 1000,
    seed: int = 0,
    min_validation_accuracy: float | None = 0.90,
    input_shape: Sequence[int] = (3, 32, 32),
    limit: int | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    **network_kwargs,
) -> datasets.Dataset:
    """The pre-training corpus: one row per NAS-Bench-101 network, with the columns of
    :data:`~gptnas_hf.corpora.common.ARCHITECTURE_FEATURES` (``name`` is the cell's module
    hash, ``source`` is ``"nasbench101"``).

    The cells come from ``specs`` if given, else from the official ``tfrecord`` (modules with
    mean validation accuracy ``>= min_validation_accuracy``), else from
    :func:`sample_cells` (``num_cells`` cells drawn with ``seed``). ``limit`` keeps the first
    ``limit`` cells. Every network (``NASBench101Network(spec, **network_kwargs)``) is traced on
    the ``meta`` device at ``input_shape``. Rows are written to an Arrow file under
    ``cache_dir`` (the ``datasets`` cache by default) as they are traced, so the full corpus
    does not have to fit in memory; the same cells, shape and code reuse that file.
    ``num_proc`` traces in that many processes.
    """
    if specs is not None and tfrecord is not None:
        raise ValueError("give either specs or tfrecord, not both")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    if specs is not None:
        chosen = [spec if isinstance(spec, CellSpec) else CellSpec(*spec) for spec in specs]
        named = [(spec.hash(), spec) for spec in chosen]
    elif tfrecord is not None:
        named = [
            (module_hash, spec)
            for spec, _, module_hash in read_nasbench101(tfrecord, min_validation_accuracy, progress=progress)
        ]
    else:
        count = num_cells if limit is None else min(num_cells, limit)
        named = [(spec.hash(), spec) for spec in sample_cells(count, seed)]
    if limit is not None:
        named = named[:limit]
    cells = [(name, [list(row) for row in spec.matrix], list(spec.ops)) for name, spec in named]
    if not cells:
        return datasets.Dataset.from_dict({k: [] for k in ARCHITECTURE_FEATURES}, features=ARCHITECTURE_FEATURES)
    input_shape = tuple(int(s) for s in input_shape)
    # ``datasets`` makes one shard of every element of a list in gen_kwargs (and one job of a
    # run of shards per process): one contiguous shard per process keeps one bar per process
    jobs = max(1, min(num_proc or 1, len(cells)))
    bounds = [len(cells) * i // jobs for i in range(jobs + 1)]
    shards = [tuple(cells[bounds[i] : bounds[i + 1]]) for i in range(jobs)]
    # our own bar counts traced cells; the ``datasets`` one would only repeat it
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return datasets.Dataset.from_generator(
            _generate_rows,
            features=ARCHITECTURE_FEATURES,
            cache_dir=cache_dir,
            gen_kwargs={
                "shards": shards,
                "input_shape": input_shape,
                "network_kwargs": network_kwargs,
                "progress": progress,
            },
            num_proc=num_proc,
            fingerprint=_fingerprint(cells, input_shape, network_kwargs),
        )
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()
