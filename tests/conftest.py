import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The suite trains and runs tiny networks: one intra-op thread is as fast, and far faster
    when another job shares the two cores (two threads measured 10-17x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: the digits subset the search tests train on: 20 images a class, a quarter of them for validation
SEARCH_DIGITS = {"max_train_per_class": 20, "val_fraction": 0.25}


def tiny_search(**overrides) -> dict:
    """A GA+GPT search recipe small enough for a test (a few 10-12-block networks of width 8,
    two batches an epoch, trained in the test's own process: ``workers: 1``; the tests of the
    worker processes ask for them), with ``overrides`` on top; ``data``, ``evaluation`` and ``retrain``
    overrides are merged into the base mappings (``None`` removes a key)."""
    recipe = {
        "strategy": "ga", "population_size": 4, "generations": 2, "min_blocks": 10, "max_blocks": 12, "widths": [8],
        "max_downsamples": 3, "use_gpt": True, "dataset": "digits", "workers": 1, "data": dict(SEARCH_DIGITS),
        "evaluation": {"epochs": 1, "batch_size": 32, "lr": 0.05, "augment": False, "train_scope": "full",
                       "max_batches_per_epoch": 2},
        "seed": 0, "progress": False,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {k: v for k, v in {**recipe[key], **value}.items() if v is not None}
        elif value is None:
            recipe.pop(key, None)
        else:
            recipe[key] = value
    return recipe


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The search tests' digits (:data:`SEARCH_DIGITS`), loaded once for the session."""
    from gptnas_hf.data import load_image_data

    return load_image_data("digits", progress=False, cache_dir=tmp_path_factory.mktemp("digits-cache"), **SEARCH_DIGITS)
