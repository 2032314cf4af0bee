"""What a strategy needs is stated once, on the strategy (``min_population_size``,
``recipe_settings``), and read by its constructor and by the recipe checks alike; the recipe
checks accept every registered strategy, one registered here included."""

import pytest

from gptnas_hf.recipe_config import RecipeError
from gptnas_hf.search.config import SearchConfig, make_space, make_strategy
from gptnas_hf.search.regularized_evolution import RegularizedEvolution
from gptnas_hf.search.strategies import (STRATEGIES, GeneticAlgorithm, RandomSearch, register_strategy,
                                         strategy_class, strategy_names)
from gptnas_hf.space_blocks import BlockSpace


def _constructor_accepts(name: str, population_size: int) -> bool:
    try:
        strategy_class(name)(population_size=population_size, space=BlockSpace())
    except ValueError:
        return False
    return True


def _recipe_accepts(name: str, population_size: int) -> bool:
    try:
        SearchConfig(strategy=name, population_size=population_size)
    except RecipeError:
        return False
    return True


def test_each_strategy_states_its_smallest_population():
    assert GeneticAlgorithm.min_population_size == 2  # tournaments choose, crossover mates two parents
    assert RegularizedEvolution.min_population_size == 2  # one member: the sample's fittest is always it
    assert RandomSearch.min_population_size == 1  # its draws do not depend on the population
    with pytest.raises(ValueError, match=r"population_size must be at least 2 for the 'ga' strategy \(a tournament"):
        GeneticAlgorithm(population_size=1)
    with pytest.raises(ValueError, match=r"population_size must be at least 1 for the 'random' strategy, got 0"):
        RandomSearch(population_size=0)
    with pytest.raises(ValueError, match=r"population_size must be an int of at least 2 for the .ga. strategy"):
        GeneticAlgorithm(population_size=2.5)
    assert RandomSearch(population_size=1).population_size == 1


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("population_size", [0, 1, 2, 3])
def test_the_recipe_check_and_the_strategy_agree_on_the_population(name, population_size):
    assert _recipe_accepts(name, population_size) == _constructor_accepts(name, population_size)


def test_the_recipe_names_what_the_strategy_needs():
    with pytest.raises(RecipeError, match=r"population_size: must be at least 2 for the 'rea' strategy \(with one"):
        SearchConfig(strategy="rea", population_size=1)
    assert SearchConfig(strategy="random", population_size=1).population_size == 1


def test_a_strategy_registered_here_is_accepted_by_the_recipe_and_made_from_it():
    @register_strategy("test-trio")
    class Trio(RandomSearch):
        name = "test-trio"
        min_population_size = 3
        population_rule = "a test rule"
        recipe_settings = ("mutation_rate",)

        def __init__(self, mutation_rate=0.0, **kwargs):
            super().__init__(**kwargs)
            self.mutation_rate = mutation_rate

    try:
        config = SearchConfig(strategy="test-trio", population_size=3, mutation_rate=0.25, min_blocks=4, max_blocks=6)
        strategy = make_strategy(config, make_space(config))
        assert isinstance(strategy, Trio) and strategy.population_size == 3 and strategy.mutation_rate == 0.25
        assert strategy.space.config()["max_blocks"] == 6
        with pytest.raises(RecipeError, match=r"population_size: must be at least 3 for the 'test-trio' strategy"):
            SearchConfig(strategy="test-trio", population_size=2)
    finally:
        STRATEGIES.pop("test-trio", None)
    with pytest.raises(RecipeError, match="strategy: .*a registered strategy"):
        SearchConfig(strategy="test-trio")


def test_make_strategy_passes_the_ga_its_rates_and_the_options():
    config = SearchConfig(strategy="ga", population_size=4, crossover_rate=0.1, mutation_rate=0.9,
                          strategy_options={"tournament_size": 3})
    ga = make_strategy(config, make_space(config))
    assert (ga.crossover_rate, ga.mutation_rate, ga.tournament_size) == (0.1, 0.9, 3)
    rea = SearchConfig(strategy="rea", population_size=4, strategy_options={"sample_size": 2})
    assert make_strategy(rea, make_space(rea)).config() == {"population_size": 4, "sample_size": 2,
                                                           "offspring_per_generation": 1}
