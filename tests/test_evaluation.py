"""gptnas_hf.evaluation: train scopes, candidate evaluation, failures, the metric, retraining."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import socket

import numpy as np
import pytest
import torch
from torch import nn

from gptnas_hf.data import load_image_data
from gptnas_hf.evaluation import (
    METRIC_PATH,
    EvalConfig,
    RetrainConfig,
    evaluate_network,
    resolve_train_scope,
    retrain_network,
    trainable_parameters,
)


def _conv(cin, cout, stride=1, bn=True):
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn)]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout), nn.ReLU()) if bn else nn.Sequential(*layers, nn.ReLU())


class SmallNet(nn.Module):
    """The build_network contract: .blocks (block i = genome block i), .head, logits out."""

    def __init__(self, in_channels=1, num_classes=10, width=16, bn=True, pool_block=False):
        super().__init__()
        blocks = [_conv(in_channels, width, bn=bn), _conv(width, 2 * width, 2, bn=bn), _conv(2 * width, 2 * width, 2, bn=bn)]
        if pool_block:
            blocks.append(nn.MaxPool2d(2))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return SmallNet(**kw)


# Tiny budgets: digits, batch 32, a short warm-up.
FAST = dict(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.25, augment=False, progress=False)
TINY = dict(epochs=1, batch_size=32, lr=0.05, max_batches_per_epoch=4, progress=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_image_data("digits", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _snapshot(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _changed(before, net):
    return {k for k, v in net.named_parameters() if not torch.equal(before[k], v)}


# --------------------------------------------------------------------------- metric


def test_metric_loads_offline_and_matches_hand_computation(monkeypatch):
    import evaluate

    def no_network(*args, **kwargs):
        raise AssertionError("evaluate.load tried to reach the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ranked = evaluate.load(METRIC_PATH, keep_in_memory=True)
    logits = evaluate.load(METRIC_PATH, config_name="logits", keep_in_memory=True)

    scores = np.array([[0.1, 0.5, 0.2, 0.0, 0.9, 0.3],   # order 4 1 5 2 0 3
                       [0.9, 0.1, 0.2, 0.3, 0.4, 0.5],   # order 0 5 4 3 2 1
                       [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])  # order 5 4 3 2 1 0
    refs = [4, 1, 0]  # top-1 hit, rank 6 (miss), rank 6 (miss)
    assert logits.compute(predictions=scores, references=refs, k=5) == {"top1": 1 / 3, "top5": 1 / 3}
    refs = [1, 3, 2]  # rank 2, rank 4, rank 4: top-1 0/3, top-3 1/3, top-5 3/3
    assert logits.compute(predictions=scores, references=refs, k=3) == {"top1": 0.0, "top3": 1 / 3}
    order = np.argsort(-scores, axis=1)[:, :5]
    assert ranked.compute(predictions=order, references=refs, k=5) == {"top1": 0.0, "top5": 1.0}
    assert ranked.compute(predictions=[1, 0, 2], references=refs) == {"top1": 2 / 3}


# --------------------------------------------------------------------------- scopes


def test_trainable_parameters_per_scope():
    net = _net()
    head = {id(p) for p in net.head.parameters()}
    bn = {id(p) for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    block1 = {id(p) for p in net.blocks[1].parameters()}
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(trainable_parameters(net, "full")) == {id(p) for p in net.parameters()}
    assert ids(trainable_parameters(net, "bn")) == bn | head
    assert ids(trainable_parameters(net, "predicted", [1])) == block1 | head
    assert ids(trainable_parameters(net, "predicted", [])) == head
    assert ids(trainable_parameters(net, "paper", [1])) == block1 | head
    assert ids(trainable_parameters(net, "paper")) == bn | head
    assert all(p.requires_grad for p in net.parameters())  # pure: flags untouched

    assert resolve_train_scope(net, "paper", [1]) == "predicted"
    assert resolve_train_scope(net, "paper", []) == "bn"
    assert resolve_train_scope(_net(bn=False), "paper", []) == "full"  # neither rule applies
    pooled = _net(pool_block=True)
    assert resolve_train_scope(pooled, "paper", [3]) == "bn"  # a predicted block without parameters
    assert resolve_train_scope(net, "auto", [1]) == "auto"
    with pytest.raises(IndexError):
        trainable_parameters(net, "predicted", [7])
    with pytest.raises(ValueError):
        resolve_train_scope(net, "everything")
    with pytest.raises(ValueError):
        EvalConfig(train_scope="everything")


def test_auto_scope_trains_the_same_share_rebuilt_or_not():
    """The fair scope: predicted blocks first, then seeded others, up to the share; a rebuilt
    and a not-rebuilt individual train about the same share (the paper's rule does not)."""
    from gptnas_hf.evaluation import fair_blocks
    from gptnas_hf.search_space import build_network, sample_genome

    def share(net, params):
        return sum(p.numel() for p in params) / sum(p.numel() for p in net.parameters())

    paper_gap, auto_gap = [], []
    for seed in range(12):
        net = build_network(sample_genome(seed, 10, 16, (16, 32), 3), in_channels=3, num_classes=10)
        heavy = max(range(len(net.blocks)), key=lambda i: sum(p.numel() for p in net.blocks[i].parameters()))
        predicted = [i for i in range(len(net.blocks)) if i % 4 == 1 and i != heavy][:2]
        chosen = fair_blocks(net, predicted, 0.25, seed)
        assert set(predicted) <= set(chosen) and chosen == fair_blocks(net, predicted, 0.25, seed)
        assert fair_blocks(net, [], 0.25, seed) != fair_blocks(net, [], 0.25, seed + 1) or len(net.blocks) < 3
        rebuilt = share(net, trainable_parameters(net, "auto", predicted, 0.25, seed))
        untouched = share(net, trainable_parameters(net, "auto", [], 0.25, seed))
        assert untouched >= 0.25 - 1e-9 or fair_blocks(net, [], 0.25, seed) == list(range(len(net.blocks)))
        auto_gap.append(abs(rebuilt - untouched))
        paper_gap.append(share(net, trainable_parameters(net, "paper", predicted)) - share(net, trainable_parameters(net, "paper", [])))
    assert sum(auto_gap) / len(auto_gap) < sum(paper_gap) / len(paper_gap)
    assert sum(auto_gap) / len(auto_gap) < 0.15
    with pytest.raises(ValueError, match="auto_share"):
        EvalConfig(auto_share=0.0)


def test_full_scope_learns_digits(digits):
    result = evaluate_network(_net(), digits, EvalConfig(train_scope="full", **FAST))
    assert result.status == "ok" and result.reason == ""
    assert result.fitness > 0.3, result  # chance is 0.1
    assert 0 <= result.fitness <= result.top5 <= 1
    assert len(result.train_loss) == 3 and result.train_loss[-1] < result.train_loss[0]
    assert result.train_scope == "full" and result.num_parameters == result.trainable_parameters
    assert result.seconds > 0 and result.images_per_second > 0
    again = evaluate_network(_net(), digits, EvalConfig(train_scope="full", **FAST))
    assert (again.fitness, again.train_loss) == (result.fitness, result.train_loss)  # deterministic


@pytest.mark.parametrize(
    "scope, predicted, trained_prefixes",
    [("bn", (), ("blocks.0.1.", "blocks.1.1.", "blocks.2.1.", "head.")),
     ("predicted", (1,), ("blocks.1.", "head.")),
     ("paper", (2,), ("blocks.2.", "head.")),
     ("auto", (2,), ("blocks.2.", "head."))],
)
def test_scopes_only_change_their_parameters(digits, scope, predicted, trained_prefixes):
    net = _net()
    before = _snapshot(net)
    result = evaluate_network(net, digits, EvalConfig(train_scope=scope, **TINY), predicted_blocks=predicted)
    assert result.status == "ok"
    expected = {k for k in before if k.startswith(trained_prefixes)}
    assert _changed(before, net) == expected
    assert result.trainable_parameters == sum(before[k].numel() for k in expected) < result.num_parameters
    assert all(p.requires_grad for p in net.parameters())  # flags restored


def test_nan_loss_gives_status_nan(digits):
    result = evaluate_network(_net(), digits, EvalConfig(train_scope="full", **{**TINY, "lr": 1e10, "warmup_epochs": 0}))
    assert (result.status, result.fitness, result.top5) == ("nan", 0.0, 0.0)
    assert "loss" in result.reason

    class NaNBlock(nn.Module):
        def forward(self, x):
            return x * float("nan")

    net = _net()
    net.blocks.append(NaNBlock())
    result = evaluate_network(net, digits, EvalConfig(**TINY))
    assert result.status == "nan" and result.fitness == 0.0


@pytest.mark.parametrize(
    "error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
              RuntimeError("DefaultCPUAllocator: out of memory")],
)
def test_oom_gives_status_oom(digits, monkeypatch, error):
    net = _net()

    def explode(x):
        raise error

    monkeypatch.setattr(net.blocks[1], "forward", explode)
    result = evaluate_network(net, digits, EvalConfig(**TINY), predicted_blocks=[1])
    assert (result.status, result.fitness) == ("oom", 0.0)
    assert "out of memory" in result.reason
    assert all(p.requires_grad for p in net.parameters())


def test_other_errors_escape(digits, monkeypatch):
    net = _net()
    monkeypatch.setattr(net.blocks[0], "forward", lambda x: (_ for _ in ()).throw(ValueError("shape bug")))
    with pytest.raises(ValueError, match="shape bug"):
        evaluate_network(net, digits, EvalConfig(**TINY))


def test_given_accelerator_is_used_and_released(digits):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    net = _net()
    result = evaluate_network(net, digits, EvalConfig(**TINY), accelerator=accelerator)
    assert result.status == "ok"
    assert accelerator._models == [] and accelerator._optimizers == []  # no candidate is pinned
    assert "_is_accelerate_prepared" not in net.__dict__ and "forward" not in net.__dict__
    again = evaluate_network(net, digits, EvalConfig(**TINY), accelerator=accelerator)  # same network again
    assert again.status == "ok"


def test_config_presets():
    config = EvalConfig()
    assert (config.epochs, config.batch_size, config.lr, config.momentum) == (6, 512, 0.01, 0.9)
    assert (config.train_scope, config.mixed_precision, config.warmup_epochs) == ("auto", "auto", None)
    assert EvalConfig.imagenet().batch_size == 128
    retrain = RetrainConfig()
    assert (retrain.epochs, retrain.lr, retrain.lr_step, retrain.gamma, retrain.batch_size) == (350, 0.01, 100, 0.1, 512)
    assert (RetrainConfig.imagenet().epochs, RetrainConfig.imagenet().lr_step, RetrainConfig.imagenet().batch_size) == (120, 30, 128)


# --------------------------------------------------------------------------- retraining


def test_retrain_reports_test_accuracy(digits):
    config = RetrainConfig(epochs=2, lr=0.05, lr_step=1, batch_size=32, max_batches_per_epoch=10, progress=False)
    result = retrain_network(_net(), digits, config)
    assert 0.0 <= result.test_top1 <= result.test_top5 <= 1.0
    assert result.num_parameters == sum(p.numel() for p in _net().parameters())
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert [h["lr"] for h in result.history] == pytest.approx([0.05, 0.005])  # StepLR every lr_step epochs
    assert all(np.isfinite(h["train_loss"]) for h in result.history)


def test_channels_last_layout_trains_the_same_network(digits):
    """The channels-last layout (the default: faster on the CPU) changes memory order, not the
    arithmetic: the same seeded candidate reaches (nearly) the same loss and accuracy."""
    from gptnas_hf.evaluation import EvalConfig, evaluate_network
    from gptnas_hf.search_space import build_network, sample_genome

    genome = sample_genome(5, 6, 6, (8,), 2)
    results = {}
    for layout in (True, False):
        torch.manual_seed(0)
        network = build_network(genome, in_channels=1, num_classes=10)
        config = EvalConfig(epochs=1, batch_size=32, augment=False, max_batches_per_epoch=3, channels_last=layout,
                            train_scope="full", progress=False, seed=0)
        results[layout] = evaluate_network(network, digits, config)
        conv = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == layout or conv.weight.shape[-1] == 1
    assert results[True].train_loss == pytest.approx(results[False].train_loss, rel=1e-3)
    assert abs(results[True].fitness - results[False].fitness) <= 0.05
