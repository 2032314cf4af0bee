"""Search spaces as plug-ins: the one interface the strategies, the searcher, budget repair,
diversity, the run directory and the ``nas-reconstruction`` pipeline see.

A search space is one object (NASLib's and Archai's cut); strategies know only that object.
It implements three tiers, so a space implements only what it supports:

* **every space**: :meth:`SearchSpace.load` (JSON, a string or an architecture -> an
  architecture, raising :class:`InvalidArchitectureError` naming the problem),
  :meth:`~SearchSpace.dump` (architecture -> the JSON value a record stores),
  :meth:`~SearchSpace.hash` (a stable hex digest), :meth:`~SearchSpace.sample`,
  :meth:`~SearchSpace.within_limits`, :meth:`~SearchSpace.build_network` (an ``nn.Module``
  with ``.blocks`` and ``.head``, as the evaluation's train scopes expect),
  :meth:`~SearchSpace.tokens` (a sequence of symbols, for diversity), :meth:`~SearchSpace.describe`
  and :meth:`~SearchSpace.config`;
* **evolvable** (what the GA and regularized evolution need): :meth:`~SearchSpace.mutate`,
  :meth:`~SearchSpace.crossover`, :meth:`~SearchSpace.repair`;
* **rewritable** (what the reconstruction pipeline needs): :meth:`~SearchSpace.units` (how many
  units an architecture has), :meth:`~SearchSpace.alternatives` (what unit ``i`` may become),
  :meth:`~SearchSpace.with_unit` (the architecture with unit ``i`` replaced),
  :meth:`~SearchSpace.network_layers` (the Table-1 layer records of the whole network for an
  input shape: what the GPT reads) and :meth:`~SearchSpace.unit_label` (the unit's Table-2
  block label for the FCN term, or None).

Every method is pure: randomness comes from the ``random.Random`` passed in, so equal seeds
give equal runs. Spaces register by name (:func:`register_space`, as timm registers models) and
are made with :func:`create_space` (``create_space("nas-bench-201")``). An installed package
makes its spaces known to every entry point (``gptnas search --space NAME``, recipes) by
declaring them in the ``gptnas_hf.search_spaces`` entry-point group (``NAME = module:Class``
in its ``setup.cfg`` / ``pyproject.toml``); they are loaded when a space is first looked up.
This module and the spaces are flat model-side modules: a saved model carries them as remote
code.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Callable

__all__ = [
    "InvalidArchitectureError",
    "SearchSpace",
    "SPACES",
    "register_space",
    "create_space",
    "space_names",
]


class InvalidArchitectureError(ValueError):
    """An architecture that its space cannot read: the message names the problem."""


class SearchSpace(ABC):
    """The interface a search space implements (module doc). Subclasses set ``name``."""

    name: str = ""

    # -- every space --------------------------------------------------------------------------
    @abstractmethod
    def load(self, data: Any) -> Any:
        """An architecture from its JSON value, its JSON text or an architecture of this space;
        :class:`InvalidArchitectureError` (a ``ValueError``) naming the problem otherwise."""

    @abstractmethod
    def dump(self, arch: Any) -> Any:
        """The JSON-serialisable value that :meth:`load` reads back (records store it)."""

    @abstractmethod
    def hash(self, arch: Any) -> str:
        """A stable hex digest of the architecture (equal architectures, equal hashes)."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A random architecture within the space's limits."""

    def within_limits(self, arch: Any) -> bool:
        """Whether the architecture keeps the space's configured limits (default: always)."""
        return True

    @abstractmethod
    def build_network(self, arch: Any, in_channels: int = 3, num_classes: int = 10):
        """The ``nn.Module`` of the architecture: it has ``.blocks`` (an ``nn.ModuleList``)
        and ``.head`` (the classifier), and runs on any input size."""

    def parameters(self, arch: Any, in_channels: int = 3, num_classes: int = 10) -> int:
        """The network's parameter count (default: build it and count; a space may know it
        without building)."""
        network = self.build_network(arch, in_channels=in_channels, num_classes=num_classes)
        return sum(p.numel() for p in network.parameters())

    @abstractmethod
    def tokens(self, arch: Any) -> list[str]:
        """The architecture as a sequence of symbols (diversity compares these)."""

    def describe(self, arch: Any) -> str:
        """One line for logs and reports."""
        return " / ".join(self.tokens(arch))

    def config(self) -> dict:
        """The space's settings (JSON-serialisable), recorded with a run."""
        return {}

    # -- evolvable ----------------------------------------------------------------------------
    def mutate(self, arch: Any, rng: random.Random) -> tuple[Any, str | None]:
        """(a mutant, what the mutation did: an origin suffix such as ``"alter"``), or
        ``(arch, None)`` when no mutation can change it within the limits."""
        raise NotImplementedError(f"the {self.name!r} space does not support mutation")

    def crossover(self, a: Any, b: Any, rng: random.Random) -> tuple[Any, Any] | None:
        """Two children of ``a`` and ``b``, or None when no crossover keeps the limits."""
        raise NotImplementedError(f"the {self.name!r} space does not support crossover")

    def repair(self, arch: Any, rng: random.Random) -> Any:
        """The architecture brought within the space's limits (default: as it is)."""
        return arch

    def shrink(self, arch: Any, fits: Callable[[Any], bool], rng: random.Random) -> Any | None:
        """A smaller architecture for which ``fits`` holds, or None (default: None). The budget
        repair of the search calls it with its own check, so a space never imports the search."""
        return None

    # -- rewritable ---------------------------------------------------------------------------
    def units(self, arch: Any) -> int:
        """How many units (blocks, edges) the architecture has."""
        raise NotImplementedError(f"the {self.name!r} space cannot be rewritten by the GPT")

    def alternatives(self, arch: Any, index: int) -> list[Any]:
        """What unit ``index`` may become (the current unit included)."""
        raise NotImplementedError(f"the {self.name!r} space cannot be rewritten by the GPT")

    def with_unit(self, arch: Any, index: int, unit: Any) -> Any:
        """The architecture with unit ``index`` replaced by ``unit``."""
        raise NotImplementedError(f"the {self.name!r} space cannot be rewritten by the GPT")

    def network_layers(self, arch: Any, in_channels: int = 3, image_size: int = 32,
                       num_classes: int = 10) -> list:
        """The Table-1 :class:`~gptnas_hf.encoding.LayerRecord` s of the whole network, in
        execution order, as :func:`~gptnas_hf.encoding.trace` would give them."""
        raise NotImplementedError(f"the {self.name!r} space cannot be rewritten by the GPT")

    def unit_label(self, unit: Any) -> str | None:
        """The unit's Table-2 block label (for the FCN's term), or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


SPACES: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str, factory: Callable[..., SearchSpace] | None = None, *, overwrite: bool = False):
    """Register a space class (or factory) under ``name``; usable as a class decorator."""

    def register(obj):
        if name in SPACES and not overwrite and SPACES[name] is not obj:
            raise ValueError(f"a search space named {name!r} is already registered")
        SPACES[name] = obj
        return obj

    return register(factory) if factory is not None else register


#: the modules of the built-in spaces, imported (so registered) on first use; by name, so that a
#: saved model that carries this module does not carry every space's code with it
BUILTIN_SPACE_MODULES = ("space_blocks", "space_nas_bench_201")


#: the entry-point group through which installed packages declare their search spaces
ENTRY_POINT_GROUP = "gptnas_hf.search_spaces"


def _register_builtin() -> None:
    import importlib

    for module in BUILTIN_SPACE_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def _declared_spaces() -> dict:
    """The entry points of :data:`ENTRY_POINT_GROUP`, by name (not loaded)."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _load_declared(name: str) -> None:
    point = _declared_spaces().get(name)
    if point is None or name in SPACES:
        return
    try:
        factory = point.load()
    except Exception as err:  # a broken plug-in is named, not a mystery later
        raise ValueError(f"search space {name!r} declared by entry point {point.value!r} ({ENTRY_POINT_GROUP}) "
                         f"cannot be loaded: {type(err).__name__}: {err}") from err
    if name not in SPACES:  # importing its module may have registered it already
        register_space(name, factory)


def space_names() -> list[str]:
    """The registered spaces' names and those installed packages declare (entry points)."""
    _register_builtin()
    return sorted(set(SPACES) | set(_declared_spaces()))


def create_space(name: str, **kwargs: Any) -> SearchSpace:
    """The registered space ``name`` made with ``kwargs``; a ValueError names the known ones."""
    _register_builtin()
    _load_declared(name)
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; registered: {', '.join(space_names())}")
    return SPACES[name](**kwargs)

