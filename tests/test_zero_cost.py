"""Tests for gptnas_hf.zero_cost: proxies against hand-computed values, state left as found,
determinism, the registry and score_genome on sampled genomes."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptnas_hf.data import ImageData
from gptnas_hf.search_space import build_network, sample_genome
from gptnas_hf.zero_cost import (
    ZERO_COST_PROXIES,
    register_proxy,
    score_genome,
    zero_cost_score,
    zero_cost_scores,
)

PROXIES = ("naswot", "synflow", "grad_norm", "snip", "jacob_cov")


def _linear(weight, bias=None) -> nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def _dummy_labels(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.int64)


# -- synflow -------------------------------------------------------------------------------
W1 = [[1.0, -2.0, 0.5], [-3.0, 1.0, 2.0]]  # 3 -> 2
W2 = [[2.0, -1.0], [0.5, 4.0]]  # 2 -> 2


def _synflow_by_paths(w1: torch.Tensor, w2: torch.Tensor, scale: torch.Tensor) -> float:
    """R = 1^T |W2| diag(scale) |W1| 1; dR/d|W1|_jk = scale_j sum_i |W2|_ij, dR/d|W2|_ij =
    scale_j sum_k |W1|_jk, so each weight's term is the product along the paths through it."""
    a1, a2 = w1.abs().double(), w2.abs().double()
    term1 = a1 * (scale * a2.sum(0))[:, None]
    term2 = a2 * (scale * a1.sum(1))[None, :]
    return float(term1.sum() + term2.sum())


def test_synflow_matches_the_closed_form_of_a_linear_chain():
    net = nn.Sequential(_linear(W1), nn.ReLU(), _linear(W2))
    x = torch.randn(4, 3)  # only its shape matters: synflow feeds one all-ones input
    score = zero_cost_score(net, x, _dummy_labels(4), "synflow")
    # |W1| row sums 3.5, 6; |W2| column sums 2.5, 5: R = 2.5 * 3.5 + 5 * 6 = 38.75, and each of
    # the two layers contributes R in total
    assert score == pytest.approx(77.5, rel=1e-12)
    assert score == pytest.approx(_synflow_by_paths(torch.tensor(W1), torch.tensor(W2), torch.ones(2)), rel=1e-12)


def test_synflow_runs_batchnorm_in_eval_mode_and_restores_the_weights():
    bn = nn.BatchNorm1d(2)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([-2.0, 0.5]))  # synflow uses |gamma|
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    net = nn.Sequential(_linear(W1), bn, _linear(W2)).train()  # train-mode BN on one input would raise
    before = {k: v.clone() for k, v in net.state_dict().items()}
    score = zero_cost_score(net, torch.randn(4, 3), _dummy_labels(4), "synflow")
    scale = torch.tensor([2.0, 0.5], dtype=torch.float64) / torch.sqrt(torch.tensor([4.0, 0.25], dtype=torch.float64)
                                                                       + bn.eps)
    assert score == pytest.approx(_synflow_by_paths(torch.tensor(W1), torch.tensor(W2), scale), rel=1e-6)
    assert net.training and bn.training
    for key, value in net.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key
    assert net[0].weight[0, 1].item() == -2.0  # signs kept, not only magnitudes


def test_non_finite_results_are_nan():
    net = nn.Sequential(_linear([[1e200]]), _linear([[1e200]]))  # R overflows float64
    net = net.double()
    assert math.isnan(zero_cost_score(net, torch.ones(2, 1, dtype=torch.float64), _dummy_labels(2), "synflow"))


# -- naswot --------------------------------------------------------------------------------
# identity layer, inputs whose signs are the codes: (1,1,1), (1,0,0), (0,1,0); N_A = 3 and
# every pair is at Hamming distance 2, so K_H = [[3,1,1],[1,3,1],[1,1,3]]: eigenvalues 5, 2, 2
CODED_INPUTS = torch.tensor([[1.0, 2.0, 0.5], [3.0, -1.0, -2.0], [-0.5, 1.5, -1.0]])
LOGDET_K = math.log(20.0)


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.LeakyReLU(0.1),
                                        nn.SiLU(), nn.SiLU(inplace=True), nn.GELU()])
def test_naswot_log_determinant_of_known_codes(activation):
    net = nn.Sequential(_linear(torch.eye(3).tolist()), activation)
    score = zero_cost_score(net, CODED_INPUTS.clone(), _dummy_labels(3), "naswot")
    assert score == pytest.approx(LOGDET_K, rel=1e-12)


def test_naswot_sums_the_kernels_of_all_activation_calls():
    relu = nn.ReLU()
    # the second layer sees the same sign pattern (ReLU output, identity): K_H doubles, det x 8
    net = nn.Sequential(_linear(torch.eye(3).tolist()), relu, _linear(torch.eye(3).tolist()), nn.ReLU())
    assert zero_cost_score(net, CODED_INPUTS, _dummy_labels(3), "naswot") == pytest.approx(math.log(160.0), rel=1e-12)

    class Twice(nn.Module):  # one module called twice (as torchvision's BasicBlock does)
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.relu(x))

    assert zero_cost_score(Twice(), CODED_INPUTS, _dummy_labels(3), "naswot") == pytest.approx(math.log(160.0))


def test_naswot_falls_back_to_the_classifier_inputs():
    net = nn.Sequential(nn.Identity(), _linear([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))  # no activation
    assert zero_cost_score(net, CODED_INPUTS, _dummy_labels(3), "naswot") == pytest.approx(LOGDET_K, rel=1e-12)
    with pytest.raises(ValueError, match="Identity"):
        zero_cost_score(nn.Identity(), CODED_INPUTS, _dummy_labels(3), "naswot")


def test_naswot_of_a_singular_kernel_is_nan():
    same = CODED_INPUTS[:1].repeat(3, 1)  # identical codes: K_H has rank 1
    net = nn.Sequential(_linear(torch.eye(3).tolist()), nn.ReLU())
    assert math.isnan(zero_cost_score(net, same, _dummy_labels(3), "naswot"))


# -- grad_norm -----------------------------------------------------------------------------
def _small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 5, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_grad_norm_is_the_sum_of_the_weight_gradient_norms():
    torch.manual_seed(0)
    net = _small_cnn().eval()  # the proxy runs in train mode whatever the caller's mode
    x, y = _batch()
    score = zero_cost_score(net, x, y, "grad_norm", seed=3)

    manual = copy.deepcopy(net).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)  # the same dropout mask
        F.cross_entropy(manual(x), y).backward()
    expected = manual[0].weight.grad.norm().item() + manual[6].weight.grad.norm().item()
    assert score == pytest.approx(expected, rel=1e-5)
    assert score != pytest.approx(zero_cost_score(net, x, y, "grad_norm", seed=4), rel=1e-6)  # dropout is seeded


def test_snip_is_the_connection_sensitivity_of_a_weight_mask():
    """SNIP's definition: the gradient of the loss with respect to a mask of ones on each
    weight, in absolute value, summed (it equals |w * dL/dw|)."""
    torch.manual_seed(0)
    net = _small_cnn().eval()
    x, y = _batch()
    score = zero_cost_score(net, x, y, "snip", seed=3)

    manual = copy.deepcopy(net).train()
    conv, linear = manual[0], manual[6]
    masks = [torch.ones_like(conv.weight, requires_grad=True), torch.ones_like(linear.weight, requires_grad=True)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        h = F.conv2d(x, conv.weight.detach() * masks[0], conv.bias, padding=1)
        h = manual[3](manual[2](manual[1](h)))
        out = F.linear(manual[5](manual[4](h)), linear.weight.detach() * masks[1], linear.bias)
        grads = torch.autograd.grad(F.cross_entropy(out, y), masks)
    assert score == pytest.approx(sum(g.abs().sum().item() for g in grads), rel=1e-5)


def test_jacob_cov_of_the_input_jacobians():
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix of the
    per-image Jacobians of the summed output; a network whose output ignores its input is NaN."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4))
    x, y = _batch(n=5)
    score = zero_cost_score(net, x, y, "jacob_cov")

    inputs = x.clone().requires_grad_(True)
    net(inputs).sum().backward()
    flat = inputs.grad.reshape(5, -1).double().numpy()
    import numpy as np
    v = np.linalg.eigvalsh(np.corrcoef(flat))
    assert score == pytest.approx(float(-np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))), rel=1e-9)
    # a perfectly correlated batch (the same image five times) has eigenvalues 5, 0, 0, 0, 0
    same = x[:1].repeat(5, 1, 1, 1)
    assert zero_cost_score(net, same, y, "jacob_cov") == pytest.approx(
        -(math.log(5 + 1e-5) + 1 / (5 + 1e-5) + 4 * (math.log(1e-5) + 1e5)), rel=1e-4)
    constant = nn.Sequential(nn.Flatten(), nn.Linear(50, 2))
    with torch.no_grad():
        constant[1].weight.zero_()
    assert math.isnan(zero_cost_score(constant, x, y, "jacob_cov"))


# -- contract --------------------------------------------------------------------------------
def _snapshot(net: nn.Module):
    return ({k: v.clone() for k, v in net.state_dict().items()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone()) for n, p in net.named_parameters()},
            [m.training for m in net.modules()])


@pytest.mark.parametrize("proxy", PROXIES)
def test_network_left_as_found_and_scores_reproducible(proxy):
    torch.manual_seed(0)
    net = _small_cnn().train()
    net[1].eval()  # mixed modes must come back as they were
    net[0].bias.requires_grad_(False)
    net[6].weight.grad = torch.full_like(net[6].weight, 7.0)  # a gradient the caller had
    x, y = _batch()
    states, params, modes = _snapshot(net)
    rng = torch.get_rng_state()

    first = zero_cost_score(net, x, y, proxy, seed=1)
    assert math.isfinite(first)
    assert zero_cost_score(net, x, y, proxy, seed=1) == first

    after_states, after_params, after_modes = _snapshot(net)
    assert after_states.keys() == states.keys()
    for key in states:  # weights and BatchNorm running statistics
        assert torch.equal(after_states[key], states[key]), key
    for name, (requires_grad, grad) in params.items():
        assert after_params[name][0] == requires_grad, name
        assert (after_params[name][1] is None) == (grad is None), name
        assert grad is None or torch.equal(after_params[name][1], grad), name
    assert after_modes == modes
    assert torch.equal(torch.get_rng_state(), rng)
    for name, module in net.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks, name


def test_unknown_proxy_names_the_known_ones():
    net, (x, y) = _small_cnn(), _batch()
    with pytest.raises(ValueError, match="'nope'.*grad_norm, jacob_cov, naswot, snip, synflow"):
        zero_cost_score(net, x, y, "nope")
    with pytest.raises(ValueError, match="nope"):
        zero_cost_scores(net, x, y, ("naswot", "nope"))
    with pytest.raises(TypeError, match="labels"):
        zero_cost_score(net, x, y.int(), "naswot")
    with pytest.raises(ValueError, match="labels"):
        zero_cost_score(net, x, y[:-1], "naswot")


def test_register_proxy_as_a_decorator():
    @register_proxy("test_batch_size")
    def batch_size(network, images, labels):
        return float(len(images))

    try:
        net, (x, y) = _small_cnn(), _batch(n=5)
        assert zero_cost_scores(net, x, y, ("test_batch_size", "naswot"))["test_batch_size"] == 5.0
        with pytest.raises(ValueError, match="already registered"):
            register_proxy("test_batch_size", lambda n, i, l: 0.0)
    finally:
        ZERO_COST_PROXIES.pop("test_batch_size", None)


# -- genomes -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data():
    g = torch.Generator().manual_seed(0)

    def images(n):
        return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)

    def labels(n):
        return torch.randint(0, 4, (n,), generator=g)

    return ImageData(train_x=images(24), train_y=labels(24), val_x=images(4), val_y=labels(4),
                     test_x=images(4), test_y=labels(4), num_classes=4, channels=3, image_size=16,
                     class_names=["a", "b", "c", "d"], mean=torch.tensor([0.5, 0.4, 0.3]),
                     std=torch.tensor([0.25, 0.2, 0.3]), source="synthetic")


def test_score_genome_on_sampled_genomes(tiny_data):
    genomes = [sample_genome(0, 4, 6, (8,), 2), sample_genome(1, 4, 6, (8,), 2)]
    assert genomes[0].to_list() != genomes[1].to_list()
    scores = [{p: score_genome(g, tiny_data, p, batch_size=16) for p in PROXIES} for g in genomes]
    for proxy in PROXIES:
        assert all(math.isfinite(s[proxy]) for s in scores), proxy
        assert scores[0][proxy] != scores[1][proxy], proxy
    assert score_genome(genomes[0], tiny_data, "synflow", batch_size=16) == scores[0]["synflow"]

    # the same as building and scoring by hand, on 16 images drawn at random with the batch seed
    torch.manual_seed(0)
    net = build_network(genomes[0], in_channels=3, num_classes=4)
    picked = torch.randperm(24, generator=torch.Generator().manual_seed(0))[:16]
    x = (tiny_data.train_x[picked].float() / 255 - tiny_data.mean[:, None, None]) / tiny_data.std[:, None, None]
    assert zero_cost_score(net, x, tiny_data.train_y[picked], "naswot") == pytest.approx(scores[0]["naswot"], rel=1e-9)
    other_batch = score_genome(genomes[0], tiny_data, "naswot", batch_size=16, batch_seed=1)
    assert other_batch != scores[0]["naswot"]


def test_a_registered_proxy_is_accepted_as_a_search_prefilter():
    from gptnas_hf.recipe_config import RecipeError
    from gptnas_hf.search.searcher import SearchConfig

    assert SearchConfig(prefilter="snip").prefilter == "snip"  # a built-in beyond the first three
    with pytest.raises(RecipeError, match="registered zero-cost proxy"):
        SearchConfig(prefilter="not-a-proxy")

    @register_proxy("test-prefilter-proxy")
    def _mine(network, images, labels):
        return 1.0

    try:
        assert SearchConfig(prefilter="test-prefilter-proxy").prefilter == "test-prefilter-proxy"
    finally:
        ZERO_COST_PROXIES.pop("test-prefilter-proxy")
