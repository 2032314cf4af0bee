"""Zero-cost NAS proxies: scores of a network at initialisation, from one minibatch, no training.

``zero_cost_score(network, images, labels, proxy="naswot", seed=0)`` returns one float, higher
meaning "predicted better"; ``zero_cost_scores`` returns several at once and
``score_genome(genome, data, proxy)`` builds a genome's network (seeded) and scores it on the
first training images of an :class:`~gptnas_hf.data.ImageData`. Everything runs on torch
autograd (``torch.func.functional_call`` substitutes the tensors a proxy needs), on the device
of ``images``, which must be the network's.

Proxies (:data:`ZERO_COST_PROXIES`, extensible with :func:`register_proxy`):

* ``"naswot"``: Mellor et al. 2021, "Neural Architecture Search without Training" (ICML).
  Every activation call of the minibatch gives each image a binary code, one bit per unit:
  ``output > 0`` for ReLU-like modules (``nn.ReLU``, ``nn.ReLU6``, ``nn.LeakyReLU`` with a
  non-negative slope; read on the output because an in-place ReLU overwrites its input,
  ``output > 0`` iff ``input > 0`` for them) and the sign of the *input* (``x > 0``, read by
  a forward pre-hook, before an in-place module overwrites it) for the other element-wise
  activations of :data:`SIGN_OF_INPUT_ACTIVATIONS` (SiLU, GELU, Sigmoid...) and a LeakyReLU
  with a negative slope. With ``c`` the concatenated codes of all calls (``N_A`` bits),
  ``K_H[i, j] = N_A - hamming(c_i, c_j)`` and the score is ``log|det K_H|`` (``slogdet``,
  float64). A module called several times per forward (torchvision's ``BasicBlock`` reuses its
  ReLU) contributes once per call; activations applied as functions (``F.relu``, e.g. inside
  torchvision's Inception) are invisible to module hooks. A network with no hooked activation
  call falls back to the codes of the inputs of its classifier (its last ``nn.Linear``); a
  network with neither is a ``ValueError``. Run in train mode (BatchNorm on batch statistics,
  as in the paper's code), under ``torch.no_grad``. Identical images make ``K_H`` singular:
  the score is then NaN (see below).
* ``"synflow"``: Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
  conserving synaptic flow" (NeurIPS). Every floating-point parameter and buffer is replaced by
  its absolute value in float64 (the network's own tensors are not touched), BatchNorm runs in
  eval mode (the whole network is in eval mode), the input is one all-ones image of the
  minibatch's shape in float64, ``R = sum(output)`` and the score is
  ``sum over scored weights theta of |theta * dR/dtheta|``.
* ``"grad_norm"``: Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS" (ICLR).
  The sum over scored weights of the L2 norm of the gradient of the mean cross-entropy loss of
  the minibatch, in train mode.

* ``"snip"``: Lee et al. 2019, "SNIP: Single-shot network pruning based on connection
  sensitivity" (ICLR), as scored by Abdelfattah et al.: the sum over scored weights of
  ``|theta * dL/dtheta|`` for the mean cross-entropy loss ``L`` of the minibatch, in train mode.
* ``"jacob_cov"``: the first NASWOT score (Mellor et al., arXiv v1 of the paper above, as
  scored by Abdelfattah et al.): the Jacobians ``J_i = d(sum of outputs)/d(image_i)`` of the
  minibatch, in train mode, flattened; with ``v`` the eigenvalues of their correlation matrix
  (float64) and ``k = 1e-5``, the score is ``-sum(log(v + k) + 1 / (v + k))``. Identical
  Jacobians (a network whose output ignores its input) give NaN.

*Scored weights* are the ``weight`` parameters of the convolution and ``nn.Linear`` modules
(:data:`SCORED_LAYERS`), whether or not they require grad: the prunable weights, as in both
reference implementations (biases and BatchNorm affine parameters take part in the forward
pass but are not summed).

Contract:

* Deterministic for a ``seed``: the proxy runs inside ``torch.random.fork_rng`` after
  ``torch.manual_seed(seed)`` (dropout, RReLU...), and the caller's RNG state is unchanged.
* The network is left as found: parameter and buffer values (BatchNorm running statistics
  included; the proxies compute on substituted tensors), ``requires_grad`` flags, ``.grad``
  (gradients come from ``torch.autograd.grad``, nothing accumulates), every module's
  train/eval mode, and no hook stays registered, also when the proxy raises.
* A NaN or infinite result (a singular ``K_H``, an overflowing synflow, a diverging loss) is
  returned as ``float("nan")``, never raised: rank NaN last.
* An unknown proxy name is a ``ValueError`` that lists the known ones; malformed ``images`` /
  ``labels`` are ``ValueError`` / ``TypeError`` naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .seeding import seeded
from .value_checks import is_int

__all__ = [
    "ZERO_COST_PROXIES",
    "RELU_LIKE_ACTIVATIONS",
    "SIGN_OF_INPUT_ACTIVATIONS",
    "SCORED_LAYERS",
    "register_proxy",
    "zero_cost_score",
    "zero_cost_scores",
    "score_genome",
    "zero_cost_batch",
]

#: a proxy: ``fn(network, images, labels) -> float``, called by :func:`zero_cost_score`.
ProxyFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

#: name -> proxy function; see :func:`register_proxy`.
ZERO_COST_PROXIES: dict[str, ProxyFn] = {}

#: NASWOT reads ``output > 0`` of these (``output > 0`` iff ``input > 0``, in place or not).
RELU_LIKE_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
#: NASWOT reads the sign of the input (``x > 0``, before the module runs) of these.
SIGN_OF_INPUT_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.SiLU, nn.GELU, nn.ELU, nn.CELU, nn.SELU, nn.Mish, nn.Hardswish, nn.PReLU, nn.RReLU,
    nn.Softplus, nn.Hardtanh, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh, nn.LogSigmoid, nn.Threshold,
)
#: modules whose ``weight`` synflow and grad_norm sum over.
SCORED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
)

# counts up to 2**24 are exact in float32; NASWOT's code products are summed in column chunks
# this wide, then in float64
_EXACT_CHUNK = 1 << 23


def register_proxy(name: str, fn: ProxyFn | None = None, *, overwrite: bool = False):
    """Register a proxy ``fn(network, images, labels) -> float`` under ``name`` (also usable as
    a decorator: ``@register_proxy("mine")``, as timm registers models). The function runs
    inside :func:`zero_cost_score`, which seeds the RNG, restores every module's train/eval
    mode and maps non-finite results to NaN; it must itself leave parameters, buffers,
    ``requires_grad`` flags and hooks as it found them. Re-registering a name for another
    function needs ``overwrite=True``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"proxy name must be a non-empty string, got {name!r}")

    def register(fn):
        if not callable(fn):
            raise TypeError(f"proxy {name!r}: {fn!r} is not callable")
        if name in ZERO_COST_PROXIES and ZERO_COST_PROXIES[name] is not fn and not overwrite:
            raise ValueError(f"zero-cost proxy {name!r} is already registered "
                             f"({getattr(ZERO_COST_PROXIES[name], '__name__', ZERO_COST_PROXIES[name])}); "
                             "pass overwrite=True to replace it")
        ZERO_COST_PROXIES[name] = fn
        return fn

    return register if fn is None else register(fn)


# -- helpers -------------------------------------------------------------------------------
def _check_proxy(name) -> ProxyFn:
    if not isinstance(name, str) or name not in ZERO_COST_PROXIES:
        raise ValueError(f"unknown zero-cost proxy {name!r}; known: {', '.join(sorted(ZERO_COST_PROXIES))}")
    return ZERO_COST_PROXIES[name]


def _check_batch(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        what = f"a {images.dtype} tensor" if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor (normalised N x C x H x W), got {what}")
    if images.dim() < 2 or images.shape[0] < 1:
        raise ValueError(f"images must have a non-empty batch dimension, got shape {tuple(images.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        what = f"a {labels.dtype} tensor" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an int64 tensor, got {what}")
    if tuple(labels.shape) != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},) to match images "
                         f"{tuple(images.shape)}, got {tuple(labels.shape)}")
    return images.detach(), labels.detach().to(images.device)


@contextmanager
def _modes_kept(network: nn.Module) -> Iterator[None]:
    """Restore every module's train/eval flag on exit (a proxy may switch the whole network)."""
    modes = [(m, m.training) for m in network.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _scored_weight_names(network: nn.Module) -> list[str]:
    """Names (as in ``named_parameters``) of the weights of :data:`SCORED_LAYERS` modules."""
    params = dict(network.named_parameters())
    names = []
    for prefix, module in network.named_modules():
        if isinstance(module, SCORED_LAYERS) and isinstance(getattr(module, "weight", None), nn.Parameter):
            name = f"{prefix}.weight" if prefix else "weight"
            if name in params:  # a weight tied to another module's appears once, under its first name
                names.append(name)
    return names


def _substitutes(network: nn.Module, param_fn, buffer_fn) -> dict[str, torch.Tensor]:
    """Stand-ins for every parameter and buffer, for ``functional_call``."""
    out = {name: param_fn(p.detach()) for name, p in network.named_parameters()}
    out.update({name: buffer_fn(b.detach()) for name, b in network.named_buffers()})
    return out


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


# -- proxies -------------------------------------------------------------------------------
class _CodeKernel:
    """Accumulates ``K_H = sum over code blocks of (c c^T + (1 - c)(1 - c)^T)`` in float64."""

    def __init__(self):
        self.kernel: torch.Tensor | None = None
        self.calls = 0

    def add(self, codes: torch.Tensor) -> None:
        codes = codes.reshape(codes.shape[0], -1)
        n, width = codes.shape
        ones = codes.sum(1, dtype=torch.float64)  # s_i
        agree = torch.zeros(n, n, dtype=torch.float64, device=codes.device)
        for start in range(0, width, _EXACT_CHUNK):
            x = codes[:, start:start + _EXACT_CHUNK].to(torch.float32)
            agree += (x @ x.T).to(torch.float64)
        # c c^T + (1-c)(1-c)^T = width - s_i - s_j + 2 c c^T
        contribution = width - ones[:, None] - ones[None, :] + 2.0 * agree
        self.kernel = contribution if self.kernel is None else self.kernel + contribution
        self.calls += 1


@register_proxy("naswot")
def _naswot(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    relu_kernel = _CodeKernel()
    handles = []

    def on_output(module, inputs, output):
        if isinstance(output, torch.Tensor):
            relu_kernel.add(output > 0)

    def on_input(module, inputs):
        if inputs and isinstance(inputs[0], torch.Tensor):
            relu_kernel.add(inputs[0] > 0)

    classifier_kernel = _CodeKernel()
    classifier = None
    try:
        for module in network.modules():
            if isinstance(module, RELU_LIKE_ACTIVATIONS) and getattr(module, "negative_slope", 0.0) >= 0:
                handles.append(module.register_forward_hook(on_output))
            elif isinstance(module, (*SIGN_OF_INPUT_ACTIVATIONS, nn.LeakyReLU)):
                # a pre-hook reads the input before an in-place module overwrites it
                handles.append(module.register_forward_pre_hook(on_input))
            if isinstance(module, nn.Linear):
                classifier = module
        if classifier is not None:
            def on_classifier_input(module, inputs):
                if inputs and isinstance(inputs[0], torch.Tensor):
                    classifier_kernel.add(inputs[0] > 0)
            handles.append(classifier.register_forward_pre_hook(on_classifier_input))
        network.train()
        state = _substitutes(network, lambda p: p, lambda b: b.clone())  # running stats move on copies
        with torch.no_grad():
            functional_call(network, state, (images,))
    finally:
        for handle in handles:
            handle.remove()
    kernel = relu_kernel.kernel if relu_kernel.calls else classifier_kernel.kernel
    if kernel is None:
        raise ValueError(f"naswot: {type(network).__name__} called no activation module (RELU_LIKE_ACTIVATIONS, "
                         "SIGN_OF_INPUT_ACTIVATIONS) and has no nn.Linear classifier to read codes from")
    return float(torch.linalg.slogdet(kernel).logabsdet)


@register_proxy("synflow")
def _synflow(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    scored = set(_scored_weight_names(network))

    def linearize(t: torch.Tensor) -> torch.Tensor:
        return t.abs().to(torch.float64) if t.is_floating_point() else t.clone()

    state = _substitutes(network, linearize, linearize)
    weights = {name: state[name].requires_grad_(True) for name in state if name in scored}
    if not weights:
        return 0.0
    network.eval()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    with torch.enable_grad():
        output = functional_call(network, state, (ones,))
        grads = torch.autograd.grad(output.sum(), list(weights.values()), allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    for theta, grad in zip(weights.values(), grads):
        if grad is not None:
            total += (theta.detach() * grad).abs().sum()
    return float(total)


def _loss_gradients(network: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """The scored weights and the gradients of the minibatch's mean cross-entropy loss with
    respect to them, in train mode (``[(weight, grad)]``, unused weights left out)."""
    scored = set(_scored_weight_names(network))
    state = _substitutes(network, lambda p: p, lambda b: b.clone())
    weights = [state[name].requires_grad_(True) for name in state if name in scored]
    if not weights:
        return []
    network.train()
    with torch.enable_grad():
        loss = F.cross_entropy(functional_call(network, state, (images,)), labels)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w.detach(), g.detach()) for w, g in zip(weights, grads) if g is not None]


@register_proxy("grad_norm")
def _grad_norm(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float(sum((g.double().norm() for _, g in _loss_gradients(network, images, labels)), 0.0))


@register_proxy("snip")
def _snip(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float(sum(((w.double() * g.double()).abs().sum() for w, g in _loss_gradients(network, images, labels)), 0.0))


#: added to the eigenvalues of jacob_cov's correlation matrix (the reference implementation's k)
JACOB_COV_K = 1e-5


@register_proxy("jacob_cov")
def _jacob_cov(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    state = _substitutes(network, lambda p: p, lambda b: b.clone())
    network.train()
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = functional_call(network, state, (inputs,))
        (jacobians,) = torch.autograd.grad(output.sum(), inputs)
    flat = jacobians.reshape(jacobians.shape[0], -1).double()
    if not torch.isfinite(flat).all():
        return float("nan")
    correlation = torch.corrcoef(flat)
    if not torch.isfinite(correlation).all():  # a Jacobian with no spread: the score is undefined
        return float("nan")
    eigenvalues = torch.linalg.eigvalsh(correlation)
    return float(-(torch.log(eigenvalues + JACOB_COV_K) + 1.0 / (eigenvalues + JACOB_COV_K)).sum())


# -- public API ----------------------------------------------------------------------------
def zero_cost_score(
    network: nn.Module, images: torch.Tensor, labels: torch.Tensor, proxy: str = "naswot", seed: int = 0
) -> float:
    """The ``proxy`` score of ``network`` on the minibatch (``images``: float N x C x H x W,
    normalised, on the network's device; ``labels``: int64 N). Deterministic for ``seed``;
    the network is left exactly as found; NaN when the result is not finite (module docstring)."""
    fn = _check_proxy(proxy)
    images, labels = _check_batch(images, labels)
    with seeded(int(seed), images.device), _modes_kept(network):
        value = fn(network, images, labels)
    return _finite(float(value))


def zero_cost_scores(
    network: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    proxies: Iterable[str] = ("naswot", "synflow", "grad_norm"),
    seed: int = 0,
) -> dict[str, float]:
    """``{proxy: zero_cost_score(network, images, labels, proxy, seed)}``, in the given order;
    every name is checked before any is computed."""
    proxies = list(dict.fromkeys(proxies))
    for name in proxies:
        _check_proxy(name)
    return {name: zero_cost_score(network, images, labels, name, seed) for name in proxies}


def score_genome(genome, data, proxy: str, batch_size: int = 64, seed: int = 0, *, space=None,
                 batch_seed: int = 0) -> float:
    """Score an architecture at initialisation: its network is built (``in_channels=data.channels``,
    ``num_classes=data.num_classes``) after ``torch.manual_seed(seed)`` (the caller's RNG state
    is kept) by ``space.build_network`` (``space``: a registered search space, default the block
    genome's :func:`gptnas_hf.search_space.build_network`), put on ``data.device``, and scored by
    :func:`zero_cost_score` on ``batch_size`` training images of ``data`` (an
    :class:`~gptnas_hf.data.ImageData`) drawn at random with ``batch_seed`` and normalised with
    ``data.mean`` / ``data.std``. The draw depends on ``batch_seed`` only, so every architecture
    of a search is scored on the same batch; it is random because the training images are stored
    class by class (their first ``batch_size`` would be one class)."""
    from .data import normalize
    from .search_space import build_network

    _check_proxy(proxy)
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(data.train_y) == 0:
        raise ValueError(f"score_genome: {data!r} has no training images")
    with seeded(int(seed), torch.device("cpu")):
        if space is None:
            network = build_network(genome, in_channels=data.channels, num_classes=data.num_classes)
        else:
            network = space.build_network(genome, in_channels=data.channels, num_classes=data.num_classes)
    network = network.to(data.device)
    picked = zero_cost_batch(len(data.train_y), batch_size, batch_seed)
    images = normalize(data.train_x[picked], data.mean, data.std)
    return zero_cost_score(network, images, data.train_y[picked], proxy, seed)


def zero_cost_batch(n_images: int, batch_size: int, batch_seed: int = 0) -> torch.Tensor:
    """Positions of the ``batch_size`` images (at most ``n_images``) a zero-cost score reads: a
    seeded random draw without replacement, the same for every network scored with one seed."""
    generator = torch.Generator().manual_seed(int(batch_seed))
    return torch.randperm(int(n_images), generator=generator)[:batch_size]
