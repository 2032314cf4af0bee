"""gptnas_hf.data: sources, splits, the safetensors cache, batched augmentation."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

import pytest
import torch

import gptnas_hf.data as data_mod
from gptnas_hf.data import DataSourceError, ImageData, augment, iterate_batches, load_image_data, normalize

CIFAR10_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def digits(cache_dir):
    return load_image_data("digits", cache_dir=cache_dir, progress=False)


def _class_fractions(y, k):
    return torch.bincount(y, minlength=k).double() / len(y)


# --------------------------------------------------------------------------- digits


def test_digits_shape_and_split(digits):
    d = digits
    assert isinstance(d, ImageData)
    assert (d.channels, d.image_size, d.num_classes) == (1, 32, 10)
    assert d.class_names == [str(i) for i in range(10)]
    for x, y in [(d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)]:
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 32, 32) and len(x) == len(y)
    # 1797 images: a fixed 20% test split, then 10% of the rest for validation.
    assert len(d.test_y) == 359
    assert len(d.train_y) + len(d.val_y) == 1797 - 359
    assert len(d.val_y) == round(0.1 * (1797 - 359))
    # Stratified: every class is in validation, in the proportions of train.
    assert torch.bincount(d.val_y, minlength=10).min() > 0
    assert (_class_fractions(d.val_y, 10) - _class_fractions(d.train_y, 10)).abs().max() < 0.02
    assert d.train_x.max() > 200  # 0..16 scaled to 0..255
    assert d.mean.shape == d.std.shape == (1,)
    assert 0 < d.mean.item() < 1 and 0 < d.std.item() < 1


def test_val_split_follows_seed(digits, cache_dir):
    same = load_image_data("digits", cache_dir=cache_dir, seed=0, progress=False)
    other = load_image_data("digits", cache_dir=cache_dir, seed=1, progress=False)
    assert torch.equal(same.val_x, digits.val_x)
    assert not torch.equal(other.val_x, digits.val_x)
    assert torch.equal(other.test_x, digits.test_x)  # the test split does not move with the seed


def test_max_train_per_class_and_max_test(cache_dir):
    d = load_image_data("digits", cache_dir=cache_dir, max_train_per_class=20, max_test=50, progress=False)
    pool = torch.cat([d.train_y, d.val_y])
    assert torch.bincount(pool, minlength=10).tolist() == [20] * 10  # capped before the val split
    assert len(d.val_y) == 20 and torch.bincount(d.val_y, minlength=10).tolist() == [2] * 10
    assert len(d.test_y) == 50 and torch.bincount(d.test_y, minlength=10).tolist() == [5] * 10


def test_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    calls = []
    build = data_mod._build
    monkeypatch.setattr(data_mod, "_build", lambda *a: calls.append(1) or build(*a))
    first = load_image_data("digits", cache_dir=tmp_path, max_test=100, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert calls == [1] and len(files) == 1 and not first.from_cache
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))

    second = load_image_data("digits", cache_dir=tmp_path, max_test=100, progress=False)
    assert calls == [1], "the second call decoded again"
    assert second.from_cache
    assert (second.class_names, second.num_classes, second.channels, second.image_size, second.source) == (
        first.class_names, first.num_classes, first.channels, first.image_size, first.source)
    for k in ImageData._TENSORS:
        assert torch.equal(getattr(second, k), getattr(first, k))

    load_image_data("digits", cache_dir=tmp_path, max_test=101, progress=False)  # other settings
    assert calls == [1, 1] and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_to_device_and_full_train(digits):
    moved = digits.to("cpu")
    assert moved.device == torch.device("cpu")
    x, y = digits.full_train()
    assert len(x) == len(digits.train_x) + len(digits.val_x) and len(y) == len(x)


# --------------------------------------------------------------------------- shared CIFAR-10


@pytest.mark.skipif(not CIFAR10_DIR.exists(), reason=f"shared CIFAR-10 parquet not found at {CIFAR10_DIR}")
def test_cifar10_parquet(tmp_path):
    d = load_image_data(CIFAR10_DIR, cache_dir=tmp_path, max_train_per_class=10, max_test=40, progress=False)
    assert (d.channels, d.image_size, d.num_classes) == (3, 32, 10)
    assert d.class_names[:3] == ["airplane", "automobile", "bird"]
    assert len(d.train_y) == 90 and len(d.val_y) == 10 and len(d.test_y) == 40
    assert torch.bincount(d.test_y, minlength=10).tolist() == [4] * 10
    assert d.train_x.shape == (90, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.train_x.float().std() > 20  # real pictures, not blank
    assert load_image_data(CIFAR10_DIR, cache_dir=tmp_path, max_train_per_class=10, max_test=40).from_cache
    # the splits: every class in both, balanced, and no picture in two of them
    assert torch.bincount(d.train_y, minlength=10).tolist() == [9] * 10
    assert torch.bincount(d.val_y, minlength=10).tolist() == [1] * 10
    pictures = [bytes(x.numpy()) for x in torch.cat([d.train_x, d.val_x, d.test_x])]
    assert len(set(pictures)) == len(pictures)
    # CIFAR-10's own statistics (mean about 0.49, 0.48, 0.45; red > blue), not another dataset's
    assert torch.allclose(d.mean, torch.tensor([0.49, 0.48, 0.45]), atol=0.08) and d.mean[0] > d.mean[2]
    assert ((d.std > 0.15) & (d.std < 0.35)).all()
    # the subset is drawn by the seed: another seed draws other training pictures
    other = load_image_data(CIFAR10_DIR, cache_dir=tmp_path, max_train_per_class=10, max_test=40, seed=1,
                            progress=False)
    assert not torch.equal(other.train_x, d.train_x)


# --------------------------------------------------------------------------- image folders


def _write_folder(root, splits=("train", "test"), per_class=6, mode="RGB", sizes=((12, 12),)):
    from PIL import Image

    colours = {"cat": (250, 10, 10), "dog": (10, 10, 250)}
    for split in splits:
        for name, rgb in colours.items():
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                size = sizes[i % len(sizes)]
                Image.new("RGB", size, rgb).convert(mode).save(folder / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    root = _write_folder(tmp_path / "pets")
    d = load_image_data(root, cache_dir=tmp_path / "cache", val_fraction=0.25, progress=False)
    assert d.class_names == ["cat", "dog"]
    assert (d.channels, d.image_size, d.num_classes) == (3, 12, 2)
    assert len(d.test_y) == 12 and len(d.train_y) + len(d.val_y) == 12 and len(d.val_y) == 3
    # PNG is lossless: each image is its class colour (cat red, dog blue).
    for x, y in [(d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)]:
        red = x[:, 0].float().mean(dim=(1, 2))
        assert torch.equal(red > 128, y == 0)


def test_grayscale_folder_resized_and_carved_test(tmp_path):
    root = _write_folder(tmp_path / "gray", splits=("",), per_class=10, mode="L", sizes=((20, 16), (9, 9)))
    d = load_image_data(root, cache_dir=tmp_path / "cache", image_size=8, progress=False)
    assert (d.channels, d.image_size) == (1, 8)
    assert d.train_x.shape[1:] == (1, 8, 8)
    # no test split in the folder: a stratified 20% is carved from train
    assert len(d.test_y) == 4 and torch.bincount(d.test_y).tolist() == [2, 2]
    assert len(d.train_y) + len(d.val_y) == 16


# --------------------------------------------------------------------------- bad sources


def test_bad_sources_raise_clear_errors(tmp_path):
    import datasets

    missing = tmp_path / "missing"
    with pytest.raises(DataSourceError, match="missing.*no such directory"):
        load_image_data(missing, cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="empty.*directory is empty"):
        load_image_data(tmp_path / "empty", cache_dir=tmp_path)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "train.parquet").write_bytes(os.urandom(2000))
    with pytest.raises(DataSourceError, match="corrupt.*cannot be read"):
        load_image_data(tmp_path / "corrupt", cache_dir=tmp_path)
    (tmp_path / "noimg").mkdir()
    datasets.Dataset.from_dict({"x": [1, 2, 3], "label": [0, 1, 0]}).to_parquet(str(tmp_path / "noimg" / "train.parquet"))
    with pytest.raises(DataSourceError, match="noimg.*no image column"):
        load_image_data(tmp_path / "noimg", cache_dir=tmp_path)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    with pytest.raises(DataSourceError, match="no parquet files and no images"):
        load_image_data(tmp_path / "text", cache_dir=tmp_path)
    with pytest.raises(DataSourceError, match="'not-a-dataset'"):
        load_image_data("not-a-dataset", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))


def test_corrupt_image_bytes(tmp_path):
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    rows = {"img": [{"bytes": b"not an image at all", "path": None}] * 4, "label": [0, 1, 0, 1]}
    (tmp_path / "broken").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "broken" / "train.parquet"))
    with pytest.raises(DataSourceError, match="broken.*cannot (read|decode) image"):
        load_image_data(tmp_path / "broken", cache_dir=tmp_path)


# --------------------------------------------------------------------------- batched ops


def test_augment_shape_dtype_and_crops():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 10, 10), dtype=torch.uint8)
    out = augment(x, pad=2, flip=True, generator=g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(x, pad=2, flip=True, generator=torch.Generator().manual_seed(0)))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # each output is one crop of the padded image, maybe flipped
        crops = [padded[i, :, dy : dy + 10, dx : dx + 10] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)
    assert torch.equal(augment(x, pad=0, flip=False), x)
    flipped = augment(x, pad=0, flip=True, generator=g)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x))
    assert any(not torch.equal(f, o) for f, o in zip(flipped, x))


def test_normalize(digits):
    z = normalize(digits.train_x, digits.mean, digits.std)
    assert z.dtype == torch.float32 and z.shape == digits.train_x.shape
    assert abs(z.mean().item()) < 1e-3 and abs(z.std().item() - 1) < 1e-2


def test_iterate_batches():
    x, y = torch.arange(10)[:, None], torch.arange(10)
    batches = list(iterate_batches(x, y, 4))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and torch.equal(torch.cat([b[1] for b in batches]), y)
    g = torch.Generator().manual_seed(0)
    shuffled = torch.cat([b[1] for b in iterate_batches(x, y, 4, shuffle=True, generator=g)])
    assert sorted(shuffled.tolist()) == list(range(10)) and not torch.equal(shuffled, y)
    assert [len(b[1]) for b in iterate_batches(x, y, 4, drop_last=True)] == [4, 4]
    for xb, yb in iterate_batches(x, y, 3, shuffle=True):
        assert torch.equal(xb[:, 0], yb)
