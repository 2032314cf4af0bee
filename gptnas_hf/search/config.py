"""The settings of a search (:class:`SearchConfig`: every knob, checked, with the paper's
defaults; a recipe file is one; its ``gpt_adaptation`` section is an :class:`AdaptationConfig`)
and the search space and strategy they name (:func:`make_space`, :func:`make_strategy`). The
searcher, the run directory and the command line read them from here."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from ..genome_budget import DEFAULT_MAX_ACTIVATIONS, DEFAULT_MAX_PARAMETERS
from ..mask_schedule import DEFAULT_INITIAL_MASK_RATE
from ..recipe_config import (NON_NEGATIVE, POSITIVE, UNIT, RecipeError, check_fields, data_config, eval_config,
                             read_recipe, retrain_config)
from ..search_space import DEFAULT_MAX_BLOCKS, DEFAULT_MAX_DOWNSAMPLES, DEFAULT_MIN_BLOCKS, DEFAULT_WIDTHS, MAX_WIDTH
from ..search_space_protocol import SearchSpace, create_space, space_names
from ..space_blocks import BlockSpace
from ..value_checks import is_int
from .proposal_filter import PROPOSAL_SCORERS
from .strategies import (DEFAULT_CROSSOVER_RATE, DEFAULT_MUTATION_RATE, DEFAULT_POPULATION_SIZE, SearchStrategy,
                         strategy_class, strategy_names)

#: settings read under their old names (recipes and run states written before the rename)
RENAMED = {"max_parameters": "max_params"}

def _zero_cost_proxies() -> dict:
    from ..zero_cost import ZERO_COST_PROXIES

    return ZERO_COST_PROXIES


#: ranges of SearchConfig's top-level numbers (types come from the annotations)
SEARCH_CHECKS = {
    "population_size": POSITIVE, "generations": NON_NEGATIVE,  # and what the strategy needs (its min_population_size)
    "crossover_rate": UNIT, "mutation_rate": UNIT, "min_blocks": POSITIVE, "max_blocks": POSITIVE,
    "widths": (lambda v: len(v) > 0 and all(1 <= w <= MAX_WIDTH for w in v), f"a non-empty list of widths in 1..{MAX_WIDTH}"),
    "max_downsamples": NON_NEGATIVE, "initial_mask_rate": UNIT, "window_size": POSITIVE,
    "reconstruction_method": (lambda v: v in ("likelihood", "predict"), "'likelihood' or 'predict'"),
    "reconstruction_temperature": (lambda v: v > 0, "a positive number"),
    "prefilter": (lambda v: v is None or v in _zero_cost_proxies(), "null or a registered zero-cost proxy "
                  "(gptnas_hf.zero_cost.ZERO_COST_PROXIES: naswot, synflow, grad_norm, snip, jacob_cov, ...)"),
    "prefilter_keep": (lambda v: 0 < v <= 1, "a share in (0, 1]"),
    "max_params": POSITIVE, "max_activations": POSITIVE, "max_macs": POSITIVE,
    "max_latency_ms": (lambda v: v > 0, "a positive number of milliseconds"), "min_val_images": POSITIVE,
    "workers": POSITIVE, "threads": POSITIVE,
    "strategy": (lambda v: v in strategy_names(), "a registered strategy (ga, random, rea, ...)"),
    "space": (lambda v: v in space_names(), "a registered search space (blocks, nas-bench-201, ...)"),
    "max_queries": POSITIVE,
    "reconstruction_scorer": (lambda v: v in RECONSTRUCTION_SCORERS, "'gpt' or 'parameters'"),
    "proposal_filter": (lambda v: v is None or v in PROPOSAL_SCORERS, "null (or 'none'), " + ", ".join(PROPOSAL_SCORERS)),
    "proposal_pool": POSITIVE,
}

#: the words that turn proposal_filter off where a null cannot be written (a command line, an override)
OFF = ("none", "off", "null")


@dataclass
class AdaptationConfig:
    """The ``gpt_adaptation`` section (:mod:`gptnas_hf.search.adaptation`): the share of the
    trained candidates the GPT reads, its AdamW steps, learning rate and batch size, and the
    share of each batch replayed from the torchvision zoo."""

    top_fraction: float = 0.25
    steps: int = 30
    lr: float = 3e-4
    replay: float = 0.5
    batch_size: int = 16

    def __post_init__(self):
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"gpt_adaptation.top_fraction must lie in (0, 1], got {self.top_fraction!r}")
        if not 0 <= self.replay < 1:
            raise ValueError(f"gpt_adaptation.replay must lie in [0, 1), got {self.replay!r}")
        for name in ("steps", "batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"gpt_adaptation.{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"gpt_adaptation.lr must be positive, got {self.lr!r}")


#: what rates a masked unit's alternatives in a space other than the block genome: the GPT's mean
#: log-likelihood of the network, or (a control that lacks only the GPT's knowledge) its size
RECONSTRUCTION_SCORERS = ("gpt", "parameters")


@dataclass
class SearchConfig:
    """Every knob of a search; defaults are the paper's (section 4.3)."""

    strategy: str = "ga"  # "ga" | "random" | "rea" | any registered strategy
    strategy_options: dict = field(default_factory=dict)  # more arguments of the strategy (rea: sample_size, ...)
    space: str = "blocks"  # the search space: "blocks" (the paper's) | "nas-bench-201" | any registered space
    population_size: int = DEFAULT_POPULATION_SIZE
    generations: int = 20  # offspring generations after the initial population (Eq. 3's T)
    crossover_rate: float = DEFAULT_CROSSOVER_RATE
    mutation_rate: float = DEFAULT_MUTATION_RATE
    min_blocks: int = DEFAULT_MIN_BLOCKS
    max_blocks: int = DEFAULT_MAX_BLOCKS
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES
    use_gpt: bool = True
    model: str | None = None  # architecture GPT checkpoint; None: the shipped default
    initial_mask_rate: float = DEFAULT_INITIAL_MASK_RATE
    window_size: int | None = None
    reconstruction_method: str = "likelihood"  # the pipeline's method: "likelihood" | "predict" (the paper's)
    reconstruction_sampling: bool = False  # sample the new blocks (at reconstruction_temperature) instead of greedy
    reconstruction_temperature: float = 1.0
    reconstruction_scorer: str = "gpt"  # spaces other than blocks: "gpt" | "parameters" (the size-prior control)
    gpt_adaptation: dict | None = None  # fine-tune the GPT on the best genomes after each generation (adaptation.py)
    proposal_filter: str | None = None  # rate pool x the proposals a step needs and keep the best (proposal_filter.py)
    proposal_pool: int = 4  # proposals drawn per one kept when proposal_filter is on
    prefilter: str | None = None  # a registered zero-cost proxy (naswot, synflow, grad_norm...) ranking the offspring
    prefilter_keep: float = 0.5  # the share of each generation's offspring trained when prefilter is on
    dataset: str = "cifar10"
    data: dict = field(default_factory=dict)  # recipe_config.DataConfig keys: load_image_data options
    evaluation: dict = field(default_factory=dict)  # EvalConfig keys
    retrain: dict = field(default_factory=dict)  # RetrainConfig keys, plus `data` (recipe_config.retrain_data_settings)
    seed: int = 0
    output_dir: str = "runs/search"
    progress: bool = True
    # the budget (search/budget.py): a candidate over it is repaired, redrawn or refused, never trained
    max_params: int | None = DEFAULT_MAX_PARAMETERS  # parameters (None: no limit)
    max_activations: int | None = DEFAULT_MAX_ACTIVATIONS  # activation elements for one image
    max_macs: int | None = None  # multiply-accumulates for one image at the data's size (torch's FLOP counter)
    max_latency_ms: float | None = None  # median ms of one image's forward pass on the evaluation device
    workers: int | None = None  # candidates trained at once (search/workers.py); None: the CPU's cores / threads, 1 on a GPU
    threads: int | None = None  # torch threads per candidate; None: 1 on a CPU, torch's default on a GPU
    log_with: str | list | None = None  # accelerate trackers: tensorboard, wandb, mlflow, trackio, all (search/tracking.py)
    min_val_images: int = 20  # a smaller validation split cannot rank networks: refused
    fitness: dict | None = None  # look fitness up in a table instead of training (table_fitness.TableFitnessConfig)
    max_queries: int | None = None  # stop after this many distinct architectures evaluated (None: generations decide)

    def __post_init__(self):
        """Every setting checked (types, ranges, nested sections): a RecipeError naming it."""
        if isinstance(self.proposal_filter, str) and self.proposal_filter.strip().lower() in OFF:
            self.proposal_filter = None  # what a command line or an override can say for null
        values = check_fields(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "",
                              SEARCH_CHECKS)
        for key, value in values.items():
            setattr(self, key, value)
        problem = strategy_class(self.strategy).population_problem(self.population_size)
        if problem:
            raise RecipeError(f"population_size: {problem}")
        if self.max_blocks < self.min_blocks:
            raise RecipeError(f"max_blocks: must be at least min_blocks ({self.min_blocks}), got {self.max_blocks}")
        data_config(self.data)
        eval_config(self.evaluation)
        retrain_config(self.retrain)
        if self.gpt_adaptation is not None:
            from ..recipe_config import build

            build(AdaptationConfig, self.gpt_adaptation, "gpt_adaptation")
        if self.fitness is not None:
            self.table_config()
        self._warn_about_idle_settings()
        if self.prefilter is not None and self.fitness is not None:
            raise RecipeError("prefilter: the zero-cost pre-filter scores networks on images, and a search whose "
                              "fitness is read from a table (fitness.table) has none: remove prefilter, or use "
                              "proposal_filter: parameters / gpt to rate proposals without images")
        if self.space != "blocks":
            if self.use_gpt and self.reconstruction_method != "likelihood":
                raise RecipeError(f"reconstruction_method: the {self.space!r} space is rebuilt by likelihood only")
        elif self.reconstruction_scorer != "gpt":
            raise RecipeError("reconstruction_scorer: the block space is rebuilt by the GPT only ('gpt')")

    def _warn_about_idle_settings(self) -> None:
        """A setting that cannot act in this configuration is said, never ignored in silence."""
        import warnings

        defaults = {f.name: f.default for f in dataclasses.fields(type(self))}
        idle = []
        if self.gpt_adaptation is not None and not self.use_gpt:
            idle.append("gpt_adaptation has no effect with use_gpt: false (there is no GPT to adapt)")
        if self.prefilter is None and self.prefilter_keep != defaults["prefilter_keep"]:
            idle.append("prefilter_keep has no effect without prefilter")
        if self.proposal_filter is None and self.proposal_pool != defaults["proposal_pool"]:
            idle.append("proposal_pool has no effect without proposal_filter")
        if not self.use_gpt and self.reconstruction_scorer != defaults["reconstruction_scorer"]:
            idle.append("reconstruction_scorer has no effect with use_gpt: false")
        for message in idle:
            warnings.warn(f"search recipe: {message}", UserWarning, stacklevel=3)

    def table_config(self):
        """The checked ``fitness`` section (a TableFitnessConfig), or None when candidates train."""
        if self.fitness is None:
            return None
        from ..recipe_config import build
        from .table_fitness import TableFitnessConfig

        return build(TableFitnessConfig, self.fitness, "fitness")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides) -> "SearchConfig":
        """A recipe file with ``overrides`` (None: keep the recipe's) on top; any problem is a
        ValueError that names the file (and the setting, by its dotted path)."""
        recipe = read_recipe(path)
        recipe.pop("name", None)
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls.from_dict({**recipe, **given})
        except RecipeError as err:
            key = str(err).split(":", 1)[0].split(".", 1)[0].strip()
            if key in given:  # the value came from the caller (a command-line option), not the file
                raise RecipeError(f"--{key.replace('_', '-')} (over recipe {str(path)!r}): "
                                  f"{str(err).split(':', 1)[1].strip()}") from None
            raise RecipeError(f"recipe {str(path)!r}: {err}") from None

    @classmethod
    def from_dict(cls, values: dict) -> "SearchConfig":
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                check_fields(cls, {key: None}, "")  # raises, naming the key and the known keys
        return cls(**values)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["widths"] = list(self.widths)
        return values



def make_space(config: SearchConfig) -> SearchSpace:
    """The run's search space: the block genome within the recipe's limits, or a registered one."""
    if config.space == "blocks":
        return BlockSpace(min_blocks=config.min_blocks, max_blocks=config.max_blocks, widths=config.widths,
                          max_downsamples=config.max_downsamples)
    return create_space(config.space)


def make_strategy(config: SearchConfig, space: SearchSpace) -> SearchStrategy:
    """The run's strategy: the registered one the recipe names, made with the population size,
    ``space``, the recipe's ``strategy_options`` and the settings the strategy reads from the
    recipe (its ``recipe_settings``: the GA's crossover and mutation rates)."""
    cls = strategy_class(config.strategy)
    kwargs = {"population_size": config.population_size, "space": space, **config.strategy_options}
    kwargs.update({name: getattr(config, name) for name in cls.recipe_settings})
    return cls(**kwargs)
