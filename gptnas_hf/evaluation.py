"""Candidate evaluation (paper sections 3.5 and 4.3) and final retraining, with `accelerate`.

``evaluate_network`` trains a freshly built candidate for a few epochs and scores it on the
validation split; ``retrain_network`` trains the best one for the full schedule and scores it
on the test split. Both take an :class:`~gptnas_hf.data.ImageData` whose images stay uint8 on
the device; augmentation and normalisation run per batch there. Accuracy is computed by the
``evaluate`` metric module shipped in ``gptnas_hf/metrics/topk_accuracy`` (loaded from its
local directory, never from the Hub).

Learning rate during evaluation. The paper (4.3): "the learning rate is linearly incremented
to 0.01" over the 6 epochs, motivated (3.5) by warm-up: a candidate that stabilises faster
during the warm-up is considered better. By default (``warmup_epochs=None``) the learning rate
therefore rises linearly, per step, from ``lr / total_steps`` to ``lr`` over the whole run;
``warmup_epochs=k`` instead reaches ``lr`` after k epochs and then holds it. Beyond the paper,
``lr_schedule="cosine"`` warms up linearly over ``warmup_epochs`` (default: one epoch) and then
decays to zero on a half cosine, and ``lr_schedule="onecycle"`` is torch's one-cycle policy
(``OneCycleLR``: 30% warm-up from lr/25, cosine annealing to lr/1e4); both help a short
training rank networks the way a long one does (``bench.fidelity``).

Train scopes (section 3.5; ``EvalConfig.train_scope``):

* ``"predicted"``: only the blocks the GPT predicted (``network.blocks[i]`` for ``i`` in
  ``predicted_blocks``);
* ``"bn"``: only the BatchNorm layers (their affine weight and bias);
* ``"full"``: every parameter;
* ``"paper"``, the paper's rule: ``"predicted"`` when some predicted block holds parameters,
  else ``"bn"`` when the network has BatchNorm parameters, else ``"full"`` (a network with
  neither: "if both of the above rules are not satisfied, the overall neural architecture is
  trained"). Its fitness is biased: an individual the GPT rebuilt trains its new blocks, one it
  left alone only its BatchNorm, a far smaller share of its parameters
  (``bench.reconstruction_effect`` reports both), so the rule rewards being rebuilt whatever the
  architecture;
* ``"auto"`` (default), the paper's acceleration made fair: every individual trains the same
  share of its parameters (``EvalConfig.auto_share``, 25%): its predicted blocks first (they
  are freshly initialised), then further blocks in an order seeded by the candidate's seed,
  until the share is reached. Whether or not the GPT rebuilt it, a network trains about the
  same amount (``bench.reconstruction_effect`` reports the shares).

In every scope the classifier ``network.head`` is trained as well: a freshly initialised
network with a frozen random head cannot be scored. Buffers (BatchNorm running statistics)
update in every scope, since the network is in train mode. Frozen parameters get no gradient.

Processes. Under ``accelerate launch`` with several processes, ``evaluate_network`` trains
its candidate in the calling process alone (device placement and autocast from accelerate, no
DDP): the searcher hands each process its own candidates. ``retrain_network`` trains its one
network data-parallel (DDP, batches dealt round-robin to the processes).
"""

from __future__ import annotations

import functools
import math
import time
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageData, augment, iterate_batches, normalize
from .seeding import seeded

__all__ = [
    "METRIC_PATH",
    "TRAIN_SCOPES",
    "EvalConfig",
    "EvalResult",
    "RetrainConfig",
    "RetrainResult",
    "NonFiniteLossError",
    "resolve_train_scope",
    "channels_last_is_safe",
    "trainable_parameters",
    "evaluate_network",
    "retrain_network",
    "load_topk_metric",
]

METRIC_PATH = str(Path(__file__).resolve().parent / "metrics" / "topk_accuracy")
TRAIN_SCOPES = ("auto", "paper", "predicted", "bn", "full")
LR_SCHEDULES = ("warmup", "cosine", "onecycle")
_PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass
class EvalConfig:
    """Every knob of a candidate evaluation; defaults are the paper's (CIFAR, section 4.3)."""

    epochs: int = 6
    batch_size: int = 512  # ImageNet: 128 (EvalConfig.imagenet())
    lr: float = 0.01  # the peak, reached by the linear warm-up
    warmup_epochs: float | None = None  # None: the warm-up spans the whole run (see module doc)
    lr_schedule: str = "warmup"  # "warmup" (the paper's) | "cosine" | "onecycle"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    label_smoothing: float = 0.0
    augment: bool = True  # random crop (zero padding) + horizontal flip
    augment_pad: int = 4
    augment_flip: bool = True
    train_scope: str = "auto"  # "auto" | "paper" | "predicted" | "bn" | "full"
    auto_share: float = 0.25  # share of parameters the "auto" scope trains in every individual
    mixed_precision: str = "auto"  # "auto": bf16 on a CUDA GPU that supports it, else "no"
    channels_last: bool = True  # NHWC where it is safe (channels_last_is_safe): faster (bench.eval_speed measures it)
    cpu: bool = False  # force the CPU even when a GPU is there
    seed: int = 0
    max_batches_per_epoch: int | None = None  # cap for cheap proxies
    eval_batch_size: int = 1024
    progress: bool = True

    def __post_init__(self):
        if self.train_scope not in TRAIN_SCOPES:
            raise ValueError(f"train_scope must be one of {TRAIN_SCOPES}, got {self.train_scope!r}")
        if self.mixed_precision not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {_PRECISIONS}, got {self.mixed_precision!r}")
        if not 0.0 < self.auto_share <= 1.0:
            raise ValueError(f"auto_share must lie in (0, 1], got {self.auto_share}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")

    @classmethod
    def imagenet(cls, **overrides) -> "EvalConfig":
        return cls(**{"batch_size": 128, **overrides})


@dataclass
class EvalResult:
    fitness: float  # validation top-1 accuracy in [0, 1]; 0 when status is not "ok"
    top5: float
    num_parameters: int
    trainable_parameters: int
    seconds: float  # training + validation
    images_per_second: float  # training throughput
    train_loss: list[float] = field(default_factory=list)  # mean loss per epoch
    status: str = "ok"  # "ok" | "nan" | "oom"
    reason: str = ""
    train_scope: str = ""  # the scope actually used ("auto" resolved)
    channels_last: bool = False  # the layout actually used (channels_last_is_safe)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RetrainConfig:
    """Final training of the best architecture (section 4.3); defaults for CIFAR."""

    epochs: int = 350
    lr: float = 0.01
    lr_step: int = 100  # divide the learning rate by 1/gamma every lr_step epochs
    gamma: float = 0.1
    batch_size: int = 512
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    label_smoothing: float = 0.0
    augment: bool = True
    augment_pad: int = 4
    augment_flip: bool = True
    use_val: bool = True  # train on train + validation (the full training set)
    mixed_precision: str = "auto"
    channels_last: bool = True  # NHWC where it is safe (channels_last_is_safe), else NCHW
    cpu: bool = False
    seed: int = 0
    max_batches_per_epoch: int | None = None
    eval_batch_size: int = 1024
    progress: bool = True

    def __post_init__(self):
        if self.mixed_precision not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {_PRECISIONS}, got {self.mixed_precision!r}")

    @classmethod
    def imagenet(cls, **overrides) -> "RetrainConfig":
        return cls(**{"epochs": 120, "lr_step": 30, "batch_size": 128, **overrides})


@dataclass
class RetrainResult:
    test_top1: float
    test_top5: float
    num_parameters: int
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, lr, train_loss, seconds


class NonFiniteLossError(FloatingPointError):
    """The training loss (or the validation logits) became NaN or infinite."""


# ----------------------------------------------------------------------------------------
# train scopes


def _head(network: nn.Module) -> nn.Module | None:
    head = getattr(network, "head", None)
    if head is None:  # not the build_network contract: fall back to the last Linear
        head = next((m for m in reversed(list(network.modules())) if isinstance(m, nn.Linear)), None)
    return head


def _block_params(network: nn.Module, predicted_blocks: Sequence[int]) -> list[nn.Parameter]:
    if not predicted_blocks:
        return []
    blocks = getattr(network, "blocks", None)
    if blocks is None:
        raise AttributeError("predicted blocks given but the network has no .blocks")
    for i in predicted_blocks:
        if not 0 <= i < len(blocks):
            raise IndexError(f"predicted block {i} out of range (network has {len(blocks)} blocks)")
    return [p for i in sorted(set(predicted_blocks)) for p in blocks[i].parameters()]


def _bn_params(network: nn.Module) -> list[nn.Parameter]:
    bns = (m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return [p for m in bns for p in m.parameters(recurse=False)]


def resolve_train_scope(network: nn.Module, scope: str = "auto", predicted_blocks: Sequence[int] = ()) -> str:
    """The concrete scope: ``scope`` itself, the paper's rule for ``"paper"`` (module doc), or
    ``"auto"`` (its blocks are chosen by :func:`fair_blocks`)."""
    if scope not in TRAIN_SCOPES:
        raise ValueError(f"train_scope must be one of {TRAIN_SCOPES}, got {scope!r}")
    if scope != "paper":
        return scope
    if _block_params(network, predicted_blocks):
        return "predicted"
    return "bn" if _bn_params(network) else "full"


def fair_blocks(network: nn.Module, predicted_blocks: Sequence[int] = (), share: float = 0.25,
                seed: int = 0) -> list[int]:
    """The blocks the ``"auto"`` scope trains: the predicted blocks, then the others in an
    order drawn from ``seed``, until they hold ``share`` of the network's parameters."""
    import random

    blocks = getattr(network, "blocks", None)
    if blocks is None:
        raise AttributeError("the auto train scope needs a network with .blocks (a GenomeNetwork)")
    _block_params(network, predicted_blocks)  # range check
    sizes = [sum(p.numel() for p in block.parameters()) for block in blocks]
    total = sum(p.numel() for p in network.parameters())
    rest = [i for i in range(len(blocks)) if i not in set(predicted_blocks)]
    random.Random(seed).shuffle(rest)
    chosen, held = [], 0
    for i in sorted(set(predicted_blocks)) + rest:
        if held >= share * total and i not in predicted_blocks:
            break
        chosen.append(i)
        held += sizes[i]
    return sorted(chosen)


def trainable_parameters(
    network: nn.Module, scope: str = "auto", predicted_blocks: Sequence[int] = (), share: float = 0.25, seed: int = 0
) -> list[nn.Parameter]:
    """The parameters a scope trains (always including the head), in ``network.parameters()``
    order. Does not change ``requires_grad``. ``share`` and ``seed`` are the ``"auto"``
    scope's (:func:`fair_blocks`)."""
    scope = resolve_train_scope(network, scope, predicted_blocks)
    if scope == "full":
        return list(network.parameters())
    if scope == "auto":
        chosen = _block_params(network, fair_blocks(network, predicted_blocks, share, seed))
    else:
        chosen = _block_params(network, predicted_blocks) if scope == "predicted" else _bn_params(network)
    head = _head(network)
    ids = {id(p) for p in chosen} | {id(p) for p in (head.parameters() if head is not None else ())}
    return [p for p in network.parameters() if id(p) in ids]


# ----------------------------------------------------------------------------------------
# shared pieces


#: oneDNN ISA limits (``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``) under which its channels-last
#: CPU kernels are used as measured safe: the AVX-512 and later families
_SAFE_ONEDNN_ISA_PREFIXES = ("AVX512", "AVX10", "ALL", "DEFAULT")


def channels_last_is_safe(device="cpu") -> bool:
    """Whether channels-last (NHWC) training is safe on ``device``.

    Always on a GPU. On a CPU only where oneDNN runs its AVX-512 kernels: its AVX2 kernel for
    the weight gradient of a 1x1 convolution in channels-last layout (``jit_1x1:avx2``,
    ``backward_weights``) writes past its buffer when the convolution has few channels (1-7)
    and stride 2, which corrupts the heap and kills the process (SIGSEGV, ``free(): invalid
    next size``; seen with torch 2.14 on one thread: every such shape crashed under
    ``ONEDNN_MAX_CPU_ISA=AVX2``, none in NCHW nor in channels-last with the AVX-512 kernels).
    So a CPU without AVX-512 (as torch reports it,
    ``torch.backends.cpu.get_cpu_capability()``), or with oneDNN capped below it by
    ``ONEDNN_MAX_CPU_ISA``, trains in NCHW: a little slower (``bench.eval_speed``), never a crash.
    """
    import os

    if torch.device(device).type != "cpu":
        return True
    if not torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512"):
        return False
    limit = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").strip().upper()
    return limit.startswith(_SAFE_ONEDNN_ISA_PREFIXES)


def _safe_layout(config, device):
    """``config`` with ``channels_last`` kept only where it is safe on ``device``."""
    if config.channels_last and not channels_last_is_safe(device):
        return dataclasses.replace(config, channels_last=False)
    return config


def _layout_model(network: nn.Module, channels_last: bool) -> nn.Module:
    """The network in channels-last layout (in place: the same parameters), or as it is."""
    return network.to(memory_format=torch.channels_last) if channels_last else network


@functools.lru_cache(maxsize=None)
def _make_accelerator(mixed_precision: str, cpu: bool):
    from accelerate import Accelerator

    if mixed_precision == "auto":
        gpu = torch.cuda.is_available() and not cpu
        mixed_precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else "no"
    try:
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu)
    except ValueError as e:  # accelerate allows one mixed-precision setting per process
        raise ValueError(
            f"cannot create an Accelerator(mixed_precision={mixed_precision!r}) here ({e}); "
            "pass accelerator=... or keep one mixed_precision per process"
        ) from e


@functools.lru_cache(maxsize=None)
def load_topk_metric():
    """The shipped top-k accuracy metric, loaded with ``evaluate`` from its local directory."""
    import evaluate

    return evaluate.load(METRIC_PATH, keep_in_memory=True)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def _release(accelerator, model: nn.Module, *objects) -> None:
    """Drop the accelerator's references to what we prepared (it keeps them in lists, which
    would pin every candidate in memory) and undo its autocast wrapper on the network."""
    network = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    for module in (model, network):  # let a later prepare() place and wrap it again
        module.__dict__.pop("_is_accelerate_prepared", None)
    for attr in ("_models", "_optimizers", "_schedulers"):
        kept = getattr(accelerator, attr, None)
        if isinstance(kept, list):
            kept[:] = [o for o in kept if not any(o is x for x in (model, *objects))]


def _train_epoch(model, optimizer, accelerator, x, y, data: ImageData, config, generator, lr_at=None, step=0,
                 shard=False):
    """One epoch; returns (mean loss, steps, images). Sets the lr per step when ``lr_at`` is
    given. With ``shard`` (data-parallel training of one network) batches are dealt
    round-robin to the processes, the same count to each."""
    model.train()
    n_batches = math.ceil(len(x) / config.batch_size)
    if config.max_batches_per_epoch is not None:
        n_batches = min(n_batches, config.max_batches_per_epoch)
    procs, rank = (accelerator.num_processes, accelerator.process_index) if shard else (1, 0)
    n_batches -= n_batches % procs
    total, steps, images = torch.zeros((), device=x.device), 0, 0
    for i, (xb, yb) in enumerate(iterate_batches(x, y, config.batch_size, shuffle=True, generator=generator)):
        if i >= n_batches:
            break
        if i % procs != rank:
            continue
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step + steps)
        if config.augment:
            xb = augment(xb, config.augment_pad, config.augment_flip, generator)
        logits = model(_layout(normalize(xb, data.mean, data.std), config.channels_last))  # autocast by accelerate
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total += loss.detach()
        steps, images = steps + 1, images + len(xb)
        if steps % 25 == 0 and not torch.isfinite(total):  # an occasional sync, not every step
            break
    mean = (total / max(steps, 1)).item()
    if not math.isfinite(mean):
        raise NonFiniteLossError(f"training loss became {mean} (after {step + steps} steps)")
    return mean, steps, images


@torch.no_grad()
def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _topk_accuracy(model, x, y, data: ImageData, batch_size: int, k: int = 5,
                   channels_last: bool = False) -> tuple[float, float]:
    """(top-1, top-k) through the shipped evaluate metric, from each image's k best classes."""
    model.eval()
    ranked = []
    for xb, _ in iterate_batches(x, y, batch_size):
        logits = model(_layout(normalize(xb, data.mean, data.std), channels_last)).float()
        if not torch.isfinite(logits).all():
            raise NonFiniteLossError("validation logits are not finite")
        ranked.append(logits.topk(min(k, logits.shape[1]), dim=1).indices.cpu())
    if not ranked:
        return 0.0, 0.0
    scores = load_topk_metric().compute(predictions=torch.cat(ranked).numpy(), references=y.cpu().numpy(), k=k)
    return scores["top1"], scores[f"top{k}"]


def _lr_schedule(config: EvalConfig, steps_per_epoch: int):
    """The learning rate of each step (0-based) of a candidate's training (module doc)."""
    total = max(config.epochs * steps_per_epoch, 1)
    if config.lr_schedule == "onecycle":
        warm = max(round(0.3 * total), 1)
        start, end = config.lr / 25.0, config.lr / 25.0 / 1e4

        def onecycle(step: int) -> float:
            if step < warm:
                return start + (config.lr - start) * 0.5 * (1 - math.cos(math.pi * step / warm))
            t = (step - warm) / max(total - warm, 1)
            return end + (config.lr - end) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

        return onecycle
    if config.lr_schedule == "cosine":
        warm = max(round((1.0 if config.warmup_epochs is None else config.warmup_epochs) * steps_per_epoch), 1)

        def cosine(step: int) -> float:
            if step < warm:
                return config.lr * (step + 1) / warm
            t = (step - warm + 1) / max(total - warm, 1)
            return config.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

        return cosine
    warm = config.epochs if config.warmup_epochs is None else config.warmup_epochs
    warm_steps = max(round(warm * steps_per_epoch), 1)
    return lambda step: config.lr * min(1.0, (step + 1) / warm_steps)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# ----------------------------------------------------------------------------------------
# candidate evaluation


def evaluate_network(
    network: nn.Module,
    data: ImageData,
    config: EvalConfig | None = None,
    predicted_blocks: Sequence[int] = (),
    accelerator=None,
) -> EvalResult:
    """Train ``network`` briefly (config, scope) on ``data``'s train split and score it.

    fitness = validation top-1 accuracy. A loss that turns NaN/inf gives status ``"nan"``, an
    out-of-memory error status ``"oom"``, both with fitness 0 and the reason; any other error
    propagates. ``data`` is moved to the accelerator's device (move it once beforehand with
    ``data.to(device)`` to avoid a copy per candidate). With ``accelerator`` given, its
    mixed-precision setting wins over ``config.mixed_precision``. ``requires_grad`` flags are
    restored afterwards; the trained weights stay in ``network``.
    """
    config = config or EvalConfig()
    accelerator = accelerator or _make_accelerator(config.mixed_precision, config.cpu)
    config = _safe_layout(config, accelerator.device)
    scope = resolve_train_scope(network, config.train_scope, predicted_blocks)
    params = trainable_parameters(network, scope, predicted_blocks, config.auto_share, config.seed)
    num_params = sum(p.numel() for p in network.parameters())
    num_trainable = sum(p.numel() for p in params)
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=config.nesterov
    )
    steps_per_epoch = math.ceil(len(data.train_x) / config.batch_size)
    if config.max_batches_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_batches_per_epoch)
    lr_at = _lr_schedule(config, steps_per_epoch)

    flags = [(p, p.requires_grad) for p in network.parameters()]  # restored in `finally`
    train_ids = {id(p) for p in params}
    for p in network.parameters():
        p.requires_grad_(id(p) in train_ids)
    model, losses, images, step = network, [], 0, 0
    status, reason, top1, top5 = "ok", "", 0.0, 0.0
    start = time.perf_counter()
    train_seconds = 0.0
    try:  # moving to the device can run out of memory too
        data = data.to(accelerator.device)
        # One candidate per process: device placement and autocast, no DDP wrapper (under
        # `accelerate launch` the searcher gives each process its own candidates).
        model = accelerator.prepare_model(_layout_model(network, config.channels_last), evaluation_mode=True)
        optimizer = accelerator.prepare_optimizer(optimizer)
        with seeded(config.seed, accelerator.device):
            generator = _generator(config.seed, accelerator.device)
            bar = tqdm(range(config.epochs), desc="evaluate", leave=False,
                       disable=not (config.progress and accelerator.is_local_main_process))
            for _ in bar:
                loss, steps, n = _train_epoch(model, optimizer, accelerator, data.train_x, data.train_y, data,
                                              config, generator, lr_at, step)
                losses.append(loss)
                step, images = step + steps, images + n
                bar.set_postfix(loss=f"{loss:.3f}")
            train_seconds = time.perf_counter() - start
            top1, top5 = _topk_accuracy(model, data.val_x, data.val_y, data, config.eval_batch_size,
                                        channels_last=config.channels_last)
    except NonFiniteLossError as e:
        status, reason = "nan", str(e)
    except Exception as e:  # noqa: BLE001 - only out-of-memory is turned into a result
        if not _is_oom(e):
            raise
        status, reason = "oom", f"{type(e).__name__}: {str(e)[:500]}"
    finally:
        optimizer.zero_grad(set_to_none=True)
        _release(accelerator, model, optimizer)
        for p, flag in flags:
            p.requires_grad_(flag)
    if status != "ok":
        del optimizer, model, data
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        top1 = top5 = 0.0
    seconds = time.perf_counter() - start
    train_seconds = train_seconds or seconds
    return EvalResult(
        fitness=top1, top5=top5, num_parameters=num_params, trainable_parameters=num_trainable,
        seconds=seconds, images_per_second=images / max(train_seconds, 1e-9), train_loss=losses,
        status=status, reason=reason, train_scope=scope, channels_last=config.channels_last,
    )


# ----------------------------------------------------------------------------------------
# final retraining


def retrain_network(
    network: nn.Module, data: ImageData, config: RetrainConfig | None = None, accelerator=None
) -> RetrainResult:
    """Train every parameter of ``network`` on the full training set (train + validation) with
    SGD and a step schedule (``StepLR``: lr * gamma every ``lr_step`` epochs), then report top-1
    and top-5 on the test split. A non-finite loss raises :class:`NonFiniteLossError`."""
    config = config or RetrainConfig()
    accelerator = accelerator or _make_accelerator(config.mixed_precision, config.cpu)
    config = _safe_layout(config, accelerator.device)
    for p in network.parameters():
        p.requires_grad_(True)
    data = data.to(accelerator.device)
    x, y = data.full_train() if config.use_val else (data.train_x, data.train_y)
    optimizer = torch.optim.SGD(
        network.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, nesterov=config.nesterov,
    )
    # Stepped once per epoch by us; not prepared (accelerate would step it once per process).
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.gamma)
    model, prepared = accelerator.prepare(_layout_model(network, config.channels_last), optimizer)
    history = []
    try:
        with seeded(config.seed, accelerator.device):
            generator = _generator(config.seed, accelerator.device)
            bar = tqdm(range(config.epochs), desc="retrain",
                       disable=not (config.progress and accelerator.is_local_main_process))
            for epoch in bar:
                start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
                loss, _, _ = _train_epoch(model, prepared, accelerator, x, y, data, config, generator, shard=True)
                scheduler.step()
                history.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss,
                                "seconds": time.perf_counter() - start})
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2g}")
            top1, top5 = _topk_accuracy(model, data.test_x, data.test_y, data, config.eval_batch_size,
                                        channels_last=config.channels_last)
    finally:
        _release(accelerator, model, prepared)
    return RetrainResult(
        test_top1=top1, test_top5=top5, num_parameters=sum(p.numel() for p in network.parameters()), history=history
    )
