"""Degenerate data is refused or handled, never searched silently (issue 10, case 4): one class,
a validation split too small to rank networks, images of mixed sizes, missing columns."""

import pytest
import torch
from PIL import Image

from gptnas_hf.data import DataSourceError, load_image_data
from gptnas_hf.search.searcher import NASSearcher, SearchConfig

from conftest import tiny_search

TINY = tiny_search(strategy="random", population_size=2, generations=0, max_blocks=10, use_gpt=False,
                   dataset=None, data=None, evaluation={"lr": None, "max_batches_per_epoch": 1})


def folder(root, sizes_per_class, rgb=((220, 20, 20), (20, 20, 220), (20, 200, 20))):
    """class folders; class c holds one PNG per entry of sizes_per_class[c] ((width, height))."""
    for c, sizes in enumerate(sizes_per_class):
        (root / f"c{c}").mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, rgb[c % len(rgb)]).save(root / f"c{c}" / f"{i}.png")
    return root


def test_one_class_is_refused(tmp_path):
    import datasets

    root = folder(tmp_path / "one", [[(10, 10)] * 30])
    with pytest.raises(DataSourceError, match=r"one sub-folder per class, and a classifier needs at least 2"):
        load_image_data(root, cache_dir=tmp_path / "cache", progress=False)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    rows = {"image": [Image.new("RGB", (8, 8), (9, 9, 9))] * 30, "label": [1] * 30}  # every image a dog
    (tmp_path / "dogs").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "dogs" / "train.parquet"))
    with pytest.raises(DataSourceError, match=r"1 class \('dog'\); a classifier needs at least 2"):
        load_image_data(tmp_path / "dogs", cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("*.safetensors"))


@pytest.mark.parametrize("val_fraction", [0.0, 0.01])
def test_a_validation_split_too_small_to_rank_is_refused_before_training(tmp_path, val_fraction):
    data = load_image_data("digits", val_fraction=val_fraction, max_train_per_class=20, progress=False,
                           cache_dir=tmp_path / "cache")
    config = SearchConfig.from_dict({**TINY, "data": {"val_fraction": val_fraction, "max_train_per_class": 20},
                                     "output_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=rf"validation split of 'digits' has {len(data.val_y)} image.*too small to "
                                         rf"rank networks.*min_val_images.*data.val_fraction \(now {val_fraction}\)"):
        NASSearcher(config, dataset=data)
    assert not (tmp_path / "run").exists()


def test_mixed_sizes_are_resized_to_a_stated_size_and_reported(tmp_path):
    # the first image is 8x8, most are 12..40 px: the old rule (first image) trained at 8x8
    sizes = [(8, 8)] + [(12 + (i * 7) % 29, 14 + (i * 5) % 27) for i in range(39)]
    root = folder(tmp_path / "mixed", [sizes, sizes[1:] + [(8, 8)]])
    with pytest.warns(UserWarning, match="mixed image sizes"):
        data = load_image_data(root, cache_dir=tmp_path / "cache", val_fraction=0.4, progress=False)
    shorter = sorted(min(s) for s in sizes)
    assert data.image_size >= 12 and abs(data.image_size - shorter[len(shorter) // 2]) <= 3  # not 8
    assert data.train_x.shape[-2:] == (data.image_size, data.image_size)
    assert "mixed image sizes" in data.size_note and f"resized to {data.image_size}x{data.image_size}" in data.size_note
    again = load_image_data(root, cache_dir=tmp_path / "cache", val_fraction=0.4, progress=False)
    assert again.from_cache and again.size_note == data.size_note
    config = SearchConfig.from_dict({**TINY, "dataset": str(root), "data": {"val_fraction": 0.4},
                                     "output_dir": str(tmp_path / "run")})
    NASSearcher(config, dataset=data).run()
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"2 classes, 3x{data.image_size}x{data.image_size} input" in report and data.size_note in report
    # a stated size is used as is, without a note
    fixed = load_image_data(root, cache_dir=tmp_path / "cache", val_fraction=0.4, image_size=16, progress=False)
    assert fixed.image_size == 16 and fixed.size_note == ""


def test_missing_columns_name_the_setting_that_fixes_them(tmp_path):
    import datasets

    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.Value("string")})
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    rows = {"picture": [image] * 6, "kind": ["a", "b"] * 3}
    (tmp_path / "pets").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "pets" / "train.parquet"))
    with pytest.raises(DataSourceError, match=r"no label column.*set data.label_column"):
        load_image_data(tmp_path / "pets", cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(DataSourceError, match=r"no label column 'label'.*set data.label_column"):
        load_image_data(tmp_path / "pets", cache_dir=tmp_path / "cache", label_column="label", progress=False)
    with pytest.raises(DataSourceError, match=r"no image column 'img'.*set data.image_column"):
        load_image_data(tmp_path / "pets", cache_dir=tmp_path / "cache", image_column="img", progress=False)
    data = load_image_data(tmp_path / "pets", cache_dir=tmp_path / "cache", label_column="kind", val_fraction=0.25,
                           progress=False)
    assert data.class_names == ["a", "b"] and torch.equal(data.train_x[0, :, 0, 0], torch.tensor([1, 2, 3],
                                                                                               dtype=torch.uint8))
