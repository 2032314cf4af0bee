"""A searched network as a ``transformers`` image classifier.

:class:`SearchedNetConfig` holds an architecture of a search space (``search_space``: the
paper's block genome, ``"blocks"``, or a NAS-Bench-201 cell, ``"nas-bench-201"``), plus the
input it was searched for, its labels and where it came from, and
:class:`SearchedNetForImageClassification` builds it: a block genome with
:func:`gptnas_hf.genome_network.build_network`, a cell as
:class:`~gptnas_hf.space_nas_bench_201.NASBench201Network` (the benchmark's macro skeleton).
Importing ``gptnas_hf`` registers both with ``AutoConfig`` / ``AutoModelForImageClassification``
and marks them for ``auto_map``, so ``save_pretrained`` writes this file and every flat module it
imports, directly or through another (transformers follows each ``from .x import``:
``genome_network.py``, ``genome_schema.py``, ``kind_registry.py``, ``builtin_kinds.py``,
``value_checks.py``, ``block_labels.py``, ``genome_budget.py``, ``space_nas_bench_201.py`` and
the modules that one imports) beside the weights, and the
directory (or Hub repo) also loads with ``trust_remote_code=True`` where the package is not
installed. A ``config.json`` without ``search_space`` (written before there was a choice) holds a
block genome.

Size budget: before the network is built (so before any weight is allocated, also in
``from_pretrained``), its parameters and activations are measured on the meta device (for a
NAS-Bench-201 cell through its network builder: at most 1.53 M parameters with 10 classes, so
only a huge label set or input can reach a limit) and an architecture past
``config.max_parameters`` / ``config.max_activations`` is refused with a
``GenomeBudgetError`` (a ``ValueError``). Both limits are stored in ``config.json`` and can be
overridden: ``from_pretrained(path, max_parameters=None)`` lifts one.

This module must keep to flat relative imports (``from .genome_network import ...``): it is
copied as is into saved directories, where there are no sub-packages.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .genome_budget import (DEFAULT_MAX_ACTIVATIONS, DEFAULT_MAX_PARAMETERS, GenomeBudgetError, check_genome_budget,
                            measure_genome, over_budget)
from .genome_network import build_network, init_module_weights
from .genome_schema import Genome
from .value_checks import is_int
from .space_nas_bench_201 import Cell, NASBench201Network, NASBench201Space

__all__ = ["SEARCH_SPACES", "SearchedNetConfig", "SearchedNetPreTrainedModel", "SearchedNetForImageClassification"]

#: the search spaces whose architectures a SearchedNetConfig holds (and the model builds)
SEARCH_SPACES = ("blocks", "nas-bench-201")


def _check_search_space(search_space) -> str:
    if not isinstance(search_space, str) or search_space not in SEARCH_SPACES:
        raise ValueError(f"unknown search_space {search_space!r}: a searched network is one of "
                         f"{', '.join(repr(name) for name in SEARCH_SPACES)}")
    return search_space


def _build_cell_network(cell, in_channels: int, num_classes: int) -> NASBench201Network:
    # measure_genome's builder (called under the meta device): the weights are never initialised there
    return NASBench201Network(cell, in_channels=in_channels, num_classes=num_classes, init_weights=False)


class SearchedNetConfig(PretrainedConfig):
    """Configuration of a network found by a search.

    Args:
        genome: the network. With ``search_space="blocks"``: a list of block dicts (or its JSON
            string / a ``Genome``), stored normalised (every kind parameter written out). With
            ``"nas-bench-201"``: a cell (its string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, a list
            of 6 op names or a ``Cell``), stored as the benchmark's string.
        search_space: what ``genome`` is: ``"blocks"`` (the default, the paper's block genome) or
            ``"nas-bench-201"`` (:data:`SEARCH_SPACES`); anything else is a ``ValueError``.
        num_channels: input channels (1 for grayscale data, 3 for RGB).
        image_size: the square input side the network was searched and trained at.
        image_mean / image_std: per-channel normalisation of the training data (on the [0, 1]
            scale); the image processor saved beside the model uses the same values.
        strategy / use_gpt / dataset: provenance of the search (``"ga"``, ``"rea"`` or ``"random"``,
            whether the architecture GPT rebuilt candidates, the data it searched on; for a search
            whose fitness was a table, the data it was retrained on, or None).
        genome_hash: the space's hash of the genome (:meth:`Genome.hash`; for a cell
            :meth:`NASBench201Space.hash`), filled in when not given.
        max_parameters / max_activations: the size budget checked before the network is built
            (parameters; activation elements for one ``image_size`` image); ``None`` lifts it.
        Labels come as usual: ``id2label`` / ``label2id`` (or ``num_labels``).
    """

    model_type = "gptnas-searched"

    def __init__(
        self,
        genome=None,
        num_channels: int = 3,
        image_size: int = 32,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        strategy: str | None = None,
        use_gpt: bool | None = None,
        dataset: str | None = None,
        genome_hash: str | None = None,
        max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
        max_activations: int | None = DEFAULT_MAX_ACTIVATIONS,
        search_space: str = "blocks",
        **kwargs,
    ):
        search_space = _check_search_space(search_space)
        if genome is not None and search_space == "nas-bench-201":
            cell = Cell.from_json(genome)  # InvalidArchitectureError (a ValueError) naming the problem
            genome_hash = NASBench201Space().hash(cell)
            genome = cell.to_string()
        elif genome is not None:
            genome = Genome(genome) if not isinstance(genome, Genome) else genome
            genome_hash = genome.hash()
            genome = genome.to_list()
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels!r}")
        self.search_space = search_space
        self.genome = genome
        self.genome_hash = genome_hash
        self.num_channels = int(num_channels)
        self.image_size = int(image_size)
        self.image_mean = [float(v) for v in image_mean] if image_mean is not None else [0.5] * self.num_channels
        self.image_std = [float(v) for v in image_std] if image_std is not None else [0.5] * self.num_channels
        for name in ("image_mean", "image_std"):
            if len(getattr(self, name)) != self.num_channels:
                raise ValueError(f"{name} needs one value per channel ({self.num_channels}), got {getattr(self, name)}")
        self.strategy = strategy
        self.use_gpt = use_gpt
        self.dataset = dataset
        for name, value in (("max_parameters", max_parameters), ("max_activations", max_activations)):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self.max_parameters = max_parameters
        self.max_activations = max_activations
        super().__init__(**kwargs)


class SearchedNetPreTrainedModel(PreTrainedModel):
    config_class = SearchedNetConfig
    base_model_prefix = "network"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # GenomeNetwork's initialisation, one module at a time; BatchNorm statistics reset too
        init_module_weights(module)
        if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
            module.num_batches_tracked.zero_()


class SearchedNetForImageClassification(SearchedNetPreTrainedModel):
    """The genome's network (``self.network``): for a block genome a ``GenomeNetwork`` (its
    blocks, then global average pooling and a linear classifier over ``config.num_labels``
    classes); for a NAS-Bench-201 cell a ``NASBench201Network`` (stem, 3 stages of 5 cells with
    2 reduction blocks, BN-ReLU, global average pooling and a linear ``head``)."""

    def __init__(self, config: SearchedNetConfig):
        super().__init__(config)
        search_space = _check_search_space(getattr(config, "search_space", "blocks"))
        if not config.genome:
            example = ("genome='|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
                       "nor_conv_1x1~2|'" if search_space == "nas-bench-201"
                       else "genome=[{'kind': ..., 'width': ..., 'stride': ...}, ...]")
            raise ValueError(f"SearchedNetConfig has no genome: pass {example}")
        self.num_labels = config.num_labels
        setting = "the config's max_parameters / max_activations (e.g. from_pretrained(path, max_parameters=None))"
        if search_space == "nas-bench-201":
            cell = Cell.from_json(config.genome)
            # measured on the meta device through the cell's network builder, as a block genome is
            size = measure_genome(cell, config.num_channels, config.num_labels, config.image_size,
                                  build=_build_cell_network)
            problem = over_budget(size, config.max_parameters, config.max_activations, setting)
            if problem:
                raise GenomeBudgetError(problem)
            self.network = NASBench201Network(cell, in_channels=config.num_channels, num_classes=config.num_labels)
        else:
            check_genome_budget(config.genome, config.num_channels, config.num_labels, config.image_size,
                                max_parameters=config.max_parameters, max_activations=config.max_activations,
                                setting=setting)
            self.network = build_network(config.genome, in_channels=config.num_channels,
                                         num_classes=config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        if pixel_values is None:
            raise ValueError("pixel_values is required: a float tensor N x C x H x W")
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(f"pixel_values must be N x {self.config.num_channels} x H x W, "
                             f"got shape {tuple(pixel_values.shape)}")
        logits = self.network(pixel_values.to(self.dtype))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device).view(-1))
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        if not return_dict:
            return (logits,) if loss is None else (loss, logits)
        return ImageClassifierOutput(loss=loss, logits=logits)
