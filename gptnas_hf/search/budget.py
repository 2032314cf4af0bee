"""The search's budget: what a candidate may cost, measured before it is trained, and the repair
that brings a genome over budget back inside it.

Limits (``SearchConfig``; ``None``: no limit):

* ``max_params``: parameters of the network for the data's channels and classes;
* ``max_macs``: multiply-accumulates of one forward pass of one image at the data's input
  size, counted by torch's own FLOP counter (:func:`~gptnas_hf.genome_budget.measure_genome`,
  on the meta device: nothing is allocated);
* ``max_activations``: activation elements for one image (a memory guard);
* ``max_latency_ms``: the median time of a forward pass of one image on the evaluation device
  (eval mode, 2 warm-up passes, median of 7), measured only when this limit is set.

:func:`repair` is the mutation towards a cheaper genome: while the genome is over budget it
narrows its widest blocks (all blocks of the greatest width, to the next smaller width of the
search space, or half) or drops a block that does not downsample (never below ``min_blocks``, never one of the ``protected``
blocks), chosen at random (``rng``), measuring after each step. The search repairs every
proposal over budget and draws a new one when repair cannot fit it; a genome rebuilt by the GPT
is repaired with its predicted blocks protected, and falls back to the proposal it came from when
it cannot be fitted. Whatever is still over budget is recorded with status ``"budget"`` and the
reason, and never trained."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..genome_budget import measure_genome, over_budget
from ..kind_registry import block_kind, block_params
from ..search_space import Genome, build_network, make_block

LATENCY_WARMUP = 2
LATENCY_REPEATS = 7


def measure_latency_ms(genome, in_channels: int, num_classes: int, image_size: int, device="cpu",
                       build=None) -> float:
    """Median milliseconds of one forward pass of one image (eval mode, no grad) on ``device``;
    ``build(genome, in_channels, num_classes)`` makes another space's network."""
    device = torch.device(device)
    network = (build or _build_genome)(genome, in_channels, num_classes).to(device).eval()
    image = torch.randn(1, in_channels, image_size, image_size, device=device)
    times = []
    with torch.inference_mode():
        for i in range(LATENCY_WARMUP + LATENCY_REPEATS):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            network(image)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= LATENCY_WARMUP:
                times.append(1000 * (time.perf_counter() - start))
    return float(statistics.median(times))


def _build_genome(genome, in_channels: int, num_classes: int):
    return build_network(genome, in_channels=in_channels, num_classes=num_classes)


@dataclass(frozen=True)
class SearchBudget:
    """The limits of a search and the data shape they are measured at."""

    max_params: int | None = None
    max_activations: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    device: str = "cpu"
    setting: str = ("max_params / max_macs / max_activations / max_latency_ms (the recipe's keys, or --max-params, "
                    "--max-macs, --max-latency-ms on the command line)")
    build: object = None  # (arch, in_channels, num_classes) -> network of another space; None: the block genome

    def measure(self, genome) -> dict:
        """``parameters``, ``macs``, ``activations`` and, when ``max_latency_ms`` is set, ``latency_ms``."""
        size = measure_genome(genome, self.in_channels, self.num_classes, self.image_size, build=self.build)
        out = {"parameters": size.parameters, "macs": size.macs, "activations": size.activations}
        if self.max_latency_ms is not None:
            out["latency_ms"] = round(measure_latency_ms(genome, self.in_channels, self.num_classes, self.image_size,
                                                         self.device, build=self.build), 4)
        return out

    def problem(self, measured: dict) -> str:
        """Why ``measured`` is over budget ("" when it is not)."""
        from ..genome_budget import GenomeSize

        size = GenomeSize(parameters=measured["parameters"], activations=measured["activations"],
                          image_size=self.image_size, macs=measured["macs"])
        why = over_budget(size, self.max_params, self.max_activations, self.setting, max_macs=self.max_macs)
        latency = measured.get("latency_ms")
        if self.max_latency_ms is not None and latency is not None and latency > self.max_latency_ms:
            slow = (f"the genome's network is too slow: {latency:.3f} ms a forward pass of one image on {self.device} "
                    f"(budget {self.max_latency_ms} ms); raise {self.setting} to allow it")
            why = f"{why}; {slow}" if why else slow
        return why

    def floor_problem(self, min_width: int = 1) -> str:
        """Why no network at all can meet the budget ("" when one might): every network ends in a
        global pooling and a linear classifier from at least ``min_width`` channels, so that
        classifier's parameters and MACs, and one forward pass of pooling and classifier
        (measured once, in milliseconds), are floors under any network's. Checked before any
        proposal is measured, so an impossible budget is refused at once."""
        head_parameters = (int(min_width) + 1) * self.num_classes
        head_macs = int(min_width) * self.num_classes
        if self.max_params is not None and head_parameters > self.max_params:
            return (f"no network can have at most max_params = {self.max_params:,} parameters: its classifier alone "
                    f"({min_width} channels to {self.num_classes} classes) has {head_parameters:,}; raise {self.setting}")
        if self.max_macs is not None and head_macs > self.max_macs:
            return (f"no network can take at most max_macs = {self.max_macs:,} MACs an image: its classifier alone "
                    f"({min_width} channels to {self.num_classes} classes) takes {head_macs:,}; raise {self.setting}")
        if self.max_latency_ms is None:
            return ""
        device = torch.device(self.device)
        head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(self.in_channels, self.num_classes)).to(device).eval()
        floor = measure_latency_ms(None, self.in_channels, self.num_classes, self.image_size, self.device,
                                   build=lambda *_: head)
        if floor > self.max_latency_ms:
            return (f"no network can run within max_latency_ms = {self.max_latency_ms} ms on {self.device}: a global "
                    f"pooling and a linear classifier alone take {floor:.4f} ms a forward pass of one image; raise "
                    f"{self.setting}")
        return ""

    def check(self, genome) -> tuple[dict, str]:
        measured = self.measure(genome)
        return measured, self.problem(measured)


@dataclass
class Repair:
    """What :func:`repair` did: the genome (None: could not fit), the steps taken, and where each
    block of the input went (``index_map[i]``: its new index, None when dropped)."""

    genome: Genome | None
    measured: dict
    steps: int
    index_map: list[int | None]


def _narrower(width: int, widths: Sequence[int]) -> int:
    smaller = [w for w in widths if w < width]
    return max(smaller) if smaller else max(1, width // 2)


def repair(genome, budget: SearchBudget, rng: random.Random, *, widths: Sequence[int], min_blocks: int = 1,
           protected: Sequence[int] = (), max_steps: int | None = None) -> Repair:
    """Narrow or drop blocks of ``genome`` until it fits ``budget`` (module doc)."""
    blocks = [dict(b) for b in Genome.from_json(genome)]
    size = len(blocks)
    origin: list[int] = list(range(len(blocks)))  # the input index of each current block
    protected = set(protected)
    max_steps = 4 * len(blocks) + 8 if max_steps is None else max_steps
    measured, why = budget.check(Genome(blocks))
    steps = 0
    while why and steps < max_steps:
        narrow = [i for i, b in enumerate(blocks)
                  if not block_kind(b["kind"]).preserves_width and b["width"] > 1
                  and make_block(b["kind"], _narrower(b["width"], widths), b["stride"])["width"] < b["width"]]
        drop = [i for i, b in enumerate(blocks)
                if len(blocks) > min_blocks and b["stride"] == 1 and origin[i] not in protected]
        if not narrow and not drop:
            break
        if narrow and (not drop or rng.random() < 0.6):
            widest = max(blocks[i]["width"] for i in narrow)
            for i in narrow:
                b = blocks[i]
                if b["width"] == widest:
                    blocks[i] = make_block(b["kind"], _narrower(b["width"], widths), b["stride"], **block_params(b))
        else:
            i = rng.choice(drop)
            del blocks[i]
            del origin[i]
        steps += 1
        measured, why = budget.check(Genome(blocks))
    index_map: list[int | None] = [None] * size
    for new, old in enumerate(origin):
        index_map[old] = new
    return Repair(genome=None if why else Genome(blocks), measured=measured, steps=steps, index_map=index_map)
