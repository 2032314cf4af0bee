"""Image data for candidate evaluation and final training, through `datasets`.

``load_image_data(source)`` returns an :class:`ImageData`: uint8 image tensors ``N x C x H x W``
and int64 labels for train / validation / test, decoded once and cached on disk as
safetensors. Augmentation and normalisation then run on whole batches of tensors on the
training device; nothing is decoded again per epoch.

Sources:

* ``"digits"``: scikit-learn's 8x8 digits (shipped with scikit-learn, works offline), resized
  to 32x32, one channel, 10 classes; a fixed stratified 80/20 train/test split (seed 0, so the
  test set does not move with ``seed``).
* ``"cifar10"`` -> ``uoft-cs/cifar10``, ``"cifar100"`` -> ``uoft-cs/cifar100`` (fine labels),
  ``"imagenet-1k"`` -> ``ILSVRC/imagenet-1k`` (validation split as test, 10% of train during
  search as in the paper section 4.2, images resized to 224), and any other ``org/name`` on the
  Hub through ``datasets.load_dataset``.
* a local directory of parquet files in the Hugging Face layout (``train.parquet``,
  ``test.parquet``, ``train-00000-of-00002.parquet``, ``data/train-*``...);
* any other local directory: an image folder (``load_dataset("imagefolder", data_dir=...)``,
  class sub-folders, optionally under ``train/`` and ``test/``).

Splits: the validation split is always carved from train (seeded, class-stratified); fitness
uses it, the test split is kept for the final model. The test split is ``test`` (or the
preset's), else ``validation``/``valid``/``val``, else a fixed stratified 20% carved from train.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = [
    "ImageData",
    "DataSourceError",
    "HUB_PRESETS",
    "DEFAULT_CACHE_DIR",
    "load_image_data",
    "augment",
    "normalize",
    "iterate_batches",
]

DEFAULT_CACHE_DIR = Path(os.environ.get("GPTNAS_DATA_CACHE", "~/.cache/gptnas_hf/data")).expanduser()
CACHE_FORMAT = 1  # bump when the cached content changes meaning

HUB_PRESETS = {
    "cifar10": {"path": "uoft-cs/cifar10"},
    "cifar100": {"path": "uoft-cs/cifar100", "label_column": "fine_label"},
    "imagenet-1k": {
        "path": "ILSVRC/imagenet-1k",
        "test_split": "validation",  # the test labels are not public (paper, section 4.2)
        "train_subset_fraction": 0.1,  # search on 10% of the training images (section 4.2)
        "image_size": 224,
    },
}
_TEST_SPLITS = ("test", "validation", "valid", "val")
_LABEL_NAMES = ("label", "labels", "fine_label")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_CARVED_TEST_FRACTION = 0.2


class DataSourceError(ValueError):
    """A data source that cannot be read; the message names the source and the problem."""

    def __init__(self, source, problem):
        super().__init__(f"image data source {str(source)!r}: {problem}")


@dataclass(repr=False, eq=False)
class ImageData:
    """Decoded images (uint8, N x C x H x W) and labels (int64) for the three splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    channels: int
    image_size: int
    class_names: list[str]
    mean: torch.Tensor  # per channel, on the [0, 1] scale, from train_x
    std: torch.Tensor
    source: str = ""
    size_note: str = ""  # how images of other sizes were brought to image_size ("" when none were)
    from_cache: bool = field(default=False, compare=False)

    _TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "mean", "std")

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def describe(self) -> dict:
        """What a model trained on this data must know (JSON-serialisable): channels, size,
        classes and the normalisation."""
        return {"source": str(self.source), "channels": int(self.channels), "image_size": int(self.image_size),
                "num_classes": int(self.num_classes), "class_names": [str(n) for n in self.class_names],
                "mean": [round(float(v), 6) for v in self.mean], "std": [round(float(v), 6) for v in self.std],
                "size_note": self.size_note}

    def fingerprint(self) -> str:
        """A short hash that changes when the data does: :meth:`describe`, the split sizes,
        every label and a strided sample of up to 256 images of each split (cheap even for
        ImageNet-sized tensors)."""
        digest = hashlib.sha256(json.dumps({k: v for k, v in self.describe().items() if k != "source"},
                                           sort_keys=True).encode())
        for name in ("train", "val", "test"):
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            digest.update(f"{name}:{tuple(x.shape)}".encode())
            digest.update(y.cpu().numpy().tobytes())
            if len(x):
                step = max(len(x) // 256, 1)
                digest.update(x[::step][:256].cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def to(self, device) -> "ImageData":
        """A copy with every tensor on ``device`` (no copy for tensors already there)."""
        return dataclasses.replace(self, **{k: getattr(self, k).to(device) for k in self._TENSORS})

    def full_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train + validation, the training set of the final model."""
        return torch.cat([self.train_x, self.val_x]), torch.cat([self.train_y, self.val_y])

    def __repr__(self):
        return (
            f"ImageData(source={self.source!r}, train={len(self.train_y)}, val={len(self.val_y)}, "
            f"test={len(self.test_y)}, classes={self.num_classes}, shape={self.channels}x{self.image_size}"
            f"x{self.image_size}, device={self.device})"
        )


# ----------------------------------------------------------------------------------------
# batched tensor ops (on any device)


def normalize(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``N x C x H x W`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    mean = mean.to(batch.device, torch.float32)[:, None, None]
    std = std.to(batch.device, torch.float32)[:, None, None]
    return (batch.float() / 255.0 - mean) / std


def augment(
    batch: torch.Tensor, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop after zero-padding by ``pad`` pixels and random horizontal flip, per image,
    for a whole batch at once (one gather). Same shape and dtype as ``batch``. ``generator``, if
    given, must live on ``batch.device``."""
    n, c, h, w = batch.shape
    dev = batch.device
    padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad)) if pad else batch
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=dev, generator=generator)
    rows = dy + torch.arange(h, device=dev)  # n x h
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        flipped = torch.rand(n, 1, device=dev, generator=generator) < 0.5
        cols = torch.where(flipped, w - 1 - cols, cols)
    cols = cols + dx  # n x w
    idx_n = torch.arange(n, device=dev)[:, None, None, None]
    idx_c = torch.arange(c, device=dev)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[i], y[i])`` mini-batches; with ``shuffle`` a new permutation per call."""
    n = len(x)
    if shuffle:
        perm_device = generator.device if generator is not None else "cpu"
        order = torch.randperm(n, generator=generator, device=perm_device).to(x.device)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


# ----------------------------------------------------------------------------------------
# loading


def load_image_data(
    source: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_train_per_class: int | None = None,
    max_test: int | None = None,
    image_size: int | None = None,
    train_subset_fraction: float | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    progress: bool = True,
) -> ImageData:
    """Load (decoding once, then from the safetensors cache) an image classification dataset.

    Subsets are drawn from the labels before anything is decoded, in this order, each seeded
    with ``seed`` and stratified by class:

    1. ``train_subset_fraction``: keep this fraction of the train split (``imagenet-1k``
       defaults to 0.1 as in the paper's search; pass 1.0 for the whole set);
    2. ``max_train_per_class``: keep at most this many images per class of that pool (a
       class-balanced subset for CPU proxies); the validation split is then carved from it;
    3. ``val_fraction``: the validation split (round(val_fraction * pool), per class in
       proportion);
    4. ``max_test``: keep at most this many test images (stratified).

    ``image_size`` resizes (shorter side, bilinear with antialiasing, then centre crop) to a
    square; by default the size of the training images (32 for ``digits``): the shorter side
    when a sample of up to 64 of them all have one size, else (mixed sizes) the median shorter
    side of that sample, with a warning; :attr:`ImageData.size_note` says which. Channels come
    from the data: 1 when the sampled training images are all grayscale, else 3 (RGB).

    A source with fewer than 2 classes among its training images is refused
    (:class:`DataSourceError`): there is nothing to classify.
    """
    source_str = str(source)
    spec = _resolve(source_str)
    preset = spec.get("preset", {})
    settings = {
        "format": CACHE_FORMAT,
        "source": spec["key"],
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "max_train_per_class": max_train_per_class,
        "max_test": max_test,
        "image_size": image_size if image_size is not None else preset.get("image_size"),
        "train_subset_fraction": (
            train_subset_fraction if train_subset_fraction is not None else preset.get("train_subset_fraction")
        ),
        "image_column": image_column or preset.get("image_column"),
        "label_column": label_column or preset.get("label_column"),
        "test_split": preset.get("test_split"),
    }
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    frac = settings["train_subset_fraction"]
    if frac is not None and not 0.0 < frac <= 1.0:
        raise ValueError(f"train_subset_fraction must be in (0, 1], got {frac}")

    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else DEFAULT_CACHE_DIR
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec["name"]).strip("_")[-48:] or "data"
    path = cache_dir / f"{slug}-{key}.safetensors"
    if path.exists():
        return _load_cache(path)
    data = _build(spec, settings, progress)
    _save_cache(data, path, settings)
    return data


def _resolve(source: str) -> dict:
    """Which kind of source this is, a stable cache key for it and a short name."""
    if source == "digits":
        return {"kind": "digits", "key": "sklearn:digits", "name": "digits"}
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataSourceError(source, "is a file; expected a directory of parquet files or images")
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        parquet = [p for p in files if p.suffix == ".parquet"]
        kind = "parquet" if parquet else "imagefolder"
        if kind == "imagefolder" and not any(p.suffix.lower() in _image_extensions() for p in files):
            problem = "directory is empty" if not files else "directory holds no parquet files and no images"
            raise DataSourceError(source, problem)
        # The cache key follows the files' names, sizes and modification times.
        digest = hashlib.sha256()
        for p in parquet or files:
            st = p.stat()
            digest.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        digest = digest.hexdigest()
        return {"kind": kind, "dir": path, "key": f"{kind}:{path.resolve()}:{digest}", "name": path.resolve().name}
    if source in HUB_PRESETS:
        preset = HUB_PRESETS[source]
        return {"kind": "hub", "hub": preset["path"], "preset": preset, "key": f"hub:{preset['path']}", "name": source}
    if source.startswith(("/", ".", "~")) or source.count("/") != 1 or "\\" in source:
        known = ", ".join(["digits", *HUB_PRESETS])
        raise DataSourceError(source, f"no such directory, and not a known name ({known}) or an org/name on the Hub")
    return {"kind": "hub", "hub": source, "key": f"hub:{source}", "name": source}


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _build(spec: dict, settings: dict, progress: bool) -> ImageData:
    """Read the source, draw the subsets and decode the images (the slow path)."""
    rng = np.random.default_rng(settings["seed"])
    if spec["kind"] == "digits":
        return _build_digits(settings, rng)

    import datasets

    source = spec["name"] if spec["kind"] == "hub" else str(spec["dir"])
    try:
        if spec["kind"] == "hub":
            dd = datasets.load_dataset(spec["hub"])
        else:
            dd = datasets.load_dataset(spec["kind"], data_dir=str(spec["dir"]))
    except Exception as e:  # noqa: BLE001 - re-raised with the source named
        raise DataSourceError(source, f"cannot be read by datasets ({type(e).__name__}: {e})") from e
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    if "train" not in dd:
        raise DataSourceError(source, f"no 'train' split (splits: {list(dd)})")
    train = dd["train"]
    img_col = settings["image_column"] or next(
        (k for k, f in train.features.items() if isinstance(f, datasets.Image)), None
    )
    if img_col is None or img_col not in train.features:
        which = f"no image column {img_col!r}" if img_col else "no image column"
        raise DataSourceError(source, f"{which} (features: {dict(train.features)}); set data.image_column in the "
                                      "recipe to the column that holds the images")
    lab_col = settings["label_column"] or next(
        (k for k, f in train.features.items() if isinstance(f, datasets.ClassLabel)), None
    )
    lab_col = lab_col or next((k for k in _LABEL_NAMES if k in train.features), None)
    if lab_col is None or lab_col not in train.features:
        which = f"no label column {lab_col!r}" if lab_col else "no label column"
        folder = (" (an image folder gets its labels from one sub-folder per class, and a classifier needs at "
                  "least 2)" if spec["kind"] == "imagefolder" and not lab_col else "")
        raise DataSourceError(source, f"{which}{folder} (features: {dict(train.features)}); set data.label_column "
                                      "in the recipe to the column that holds the class labels")

    # Labels first (cheap, straight from arrow), so only the images we keep get decoded.
    test_split = settings["test_split"] or next((s for s in _TEST_SPLITS if s in dd and s != "train"), None)
    if test_split is not None and (test_split not in dd or lab_col not in dd[test_split].features):
        raise DataSourceError(source, f"no labelled {test_split!r} split (splits: {list(dd)})")
    splits = [train] + ([dd[test_split]] if test_split else [])
    feature = train.features[lab_col]
    if isinstance(feature, datasets.ClassLabel):
        class_names, to_id = list(feature.names), None
    else:  # plain labels: the sorted distinct values become the classes
        values = sorted({v for ds in splits for v in ds.with_format("arrow")[lab_col].to_pylist()} - {None, -1})
        class_names, to_id = [str(v) for v in values], {v: i for i, v in enumerate(values)}
    train_y = _labels(train, lab_col, to_id)
    test_y = _labels(dd[test_split], lab_col, to_id) if test_split else np.zeros(0, np.int64)
    if test_split and not (test_y >= 0).any():
        test_split = None  # an unlabelled test split (e.g. ImageNet's): carve one instead

    train_idx = np.flatnonzero(train_y >= 0)
    if len(train_idx) == 0:
        raise DataSourceError(source, "the train split has no labelled images")
    if test_split is None:  # carve a fixed test split (seed 0, independent of `seed`)
        n_test = round(_CARVED_TEST_FRACTION * len(train_idx))
        test_idx = train_idx[_stratified_pick(train_y[train_idx], n_test, np.random.default_rng(0))]
        train_idx = np.setdiff1d(train_idx, test_idx)
        test_ds, test_y = train, train_y
    else:
        test_idx = np.flatnonzero(test_y >= 0)
        test_ds = dd[test_split]
    train_idx, val_idx, test_idx = _select(train_y, train_idx, test_y, test_idx, settings, rng)
    if len(train_idx) == 0:
        raise DataSourceError(source, "no training images left after the subsets")

    _check_classes(source, train_y[np.concatenate([train_idx, val_idx])], class_names)
    channels = _channels(train, img_col, train_idx[:16], source)
    size, size_note = settings["image_size"], ""
    if size is None:
        step = max(len(train_idx) // 64, 1)
        size, size_note = _common_size(_probe(train, img_col, train_idx[::step][:64], source), source)

    def decode(ds, idx, name):
        return _decode_split(ds, img_col, idx, channels, size, source, name, progress)

    train_x, val_x = decode(train, train_idx, "train"), decode(train, val_idx, "val")
    test_x = decode(test_ds, test_idx, "test")
    return _assemble(
        train_x, train_y[train_idx], val_x, train_y[val_idx], test_x, test_y[test_idx], class_names, spec["name"],
        size_note,
    )


def _build_digits(settings: dict, rng: np.random.Generator) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float()[:, None] * (255.0 / 16.0)  # N x 1 x 8 x 8
    labels = bunch.target.astype(np.int64)
    all_idx = np.arange(len(labels))
    test_idx = _stratified_pick(labels, round(_CARVED_TEST_FRACTION * len(labels)), np.random.default_rng(0))
    train_idx = np.setdiff1d(all_idx, test_idx)
    train_idx, val_idx, test_idx = _select(labels, train_idx, labels, test_idx, settings, rng)
    size = settings["image_size"] or 32

    def decode(idx):
        x = torch.nn.functional.interpolate(images[idx], size=(size, size), mode="bilinear", align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8)

    names = [str(int(n)) for n in bunch.target_names]
    return _assemble(
        decode(train_idx), labels[train_idx], decode(val_idx), labels[val_idx], decode(test_idx), labels[test_idx],
        names, "digits",
    )


def _labels(ds, column: str, to_id: dict | None) -> np.ndarray:
    """The label column as int64 class ids, -1 where missing."""
    import pyarrow.compute as pc

    values = ds.with_format("arrow")[column]
    if to_id is None:
        return np.asarray(pc.fill_null(values, -1).to_numpy(), dtype=np.int64)
    return np.asarray([to_id.get(v, -1) for v in values.to_pylist()], dtype=np.int64)


def _stratified_pick(labels: np.ndarray, n_pick: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (into ``labels``, sorted) of exactly ``n_pick`` items, each class represented
    in proportion to its count (largest remainder), items within a class drawn at random."""
    n_pick = int(min(max(n_pick, 0), len(labels)))
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (n_pick / max(len(labels), 1))
    take = np.floor(quota).astype(np.int64)
    extra = n_pick - int(take.sum())
    if extra > 0:
        take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    chosen = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _select(train_y, train_idx, test_y, test_idx, settings, rng):
    """Apply the subset settings (see load_image_data) to index arrays."""
    frac = settings["train_subset_fraction"]
    if frac is not None and frac < 1.0:
        train_idx = train_idx[_stratified_pick(train_y[train_idx], round(frac * len(train_idx)), rng)]
    cap = settings["max_train_per_class"]
    if cap is not None:
        keep = [rng.permutation(train_idx[train_y[train_idx] == c])[:cap] for c in np.unique(train_y[train_idx])]
        train_idx = np.sort(np.concatenate(keep))
    val_pos = _stratified_pick(train_y[train_idx], round(settings["val_fraction"] * len(train_idx)), rng)
    val_idx = train_idx[val_pos]
    train_idx = np.delete(train_idx, val_pos)
    if settings["max_test"] is not None:
        test_idx = test_idx[_stratified_pick(test_y[test_idx], settings["max_test"], rng)]
    return train_idx, val_idx, test_idx


def _probe(ds, img_col: str, idx: np.ndarray, source: str) -> list[tuple[str, tuple[int, int]]]:
    """(mode, (width, height)) of rows ``idx``, from the image headers (nothing decoded)."""
    import datasets
    from PIL import Image

    raw = ds.cast_column(img_col, datasets.Image(decode=False)).select(idx.tolist())[img_col]
    found = []
    for i, item in enumerate(raw):
        try:
            with Image.open(io.BytesIO(item["bytes"]) if item["bytes"] is not None else item["path"]) as im:
                found.append((im.mode, im.size))
        except Exception as e:  # noqa: BLE001
            raise DataSourceError(source, f"cannot read image {int(idx[i])} of the train split ({e})") from e
    return found


def _channels(ds, img_col: str, idx: np.ndarray, source: str) -> int:
    """1 when the sampled images are all grayscale, else 3."""
    modes = [mode for mode, _ in _probe(ds, img_col, idx, source)]
    return 1 if modes and all(m in _GRAY_MODES for m in modes) else 3


def _common_size(probed: list[tuple[str, tuple[int, int]]], source: str) -> tuple[int, str]:
    """The square side to train at when ``data.image_size`` is not set, and a note on how
    other sizes are handled ("" when every sampled image already has that size)."""
    sizes = sorted({size for _, size in probed})
    shorter = sorted(min(size) for _, size in probed)
    if len(sizes) == 1:
        (w, h), side = sizes[0], shorter[0]
        return side, "" if w == h else f"{w}x{h} images: shorter side {side}, centre-cropped to {side}x{side}"
    side = shorter[len(shorter) // 2]
    low, high = min(sizes, key=min), max(sizes, key=min)
    note = (f"mixed image sizes ({low[0]}x{low[1]} to {high[0]}x{high[1]} in a sample of {len(probed)}): "
            f"all resized to {side}x{side} (the median shorter side); set data.image_size to choose")
    warnings.warn(f"image data source {source!r}: {note}", UserWarning, stacklevel=4)
    return side, note


def _check_classes(source: str, labels: np.ndarray, class_names: list[str]) -> None:
    present = np.unique(labels[labels >= 0])
    if len(present) < 2:
        names = [class_names[int(c)] for c in present if int(c) < len(class_names)]
        raise DataSourceError(source, f"its training images hold {len(present)} class{'' if len(present) == 1 else 'es'}"
                                      f" ({', '.join(map(repr, names)) or 'none'}); a classifier needs at least 2")


def _decode_split(ds, img_col, idx, channels, size, source, name, progress) -> torch.Tensor:
    """Decode rows ``idx`` of ``ds`` into a uint8 ``N x C x size x size`` tensor (``size``
    None: keep the image's own size, only for a single image). JPEG/PNG/WebP/GIF go through
    torchvision's decoders, anything else through PIL."""
    import datasets

    table = ds.cast_column(img_col, datasets.Image(decode=False)).select_columns([img_col]).with_format("arrow")
    out = None if size is None else torch.empty((len(idx), channels, size, size), dtype=torch.uint8)
    chunk = 1024
    with tqdm(total=len(idx), desc=f"decode {name}", unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(idx), chunk):
            rows = idx[start : start + chunk]
            column = table[rows.tolist()].column(img_col).combine_chunks()  # struct<bytes, path>
            items = zip(column.field("bytes").to_pylist(), column.field("path").to_pylist())
            for j, (data, path) in enumerate(items):
                try:
                    img = _decode_one(data if data is not None else Path(path).read_bytes(), channels)
                except Exception as e:  # noqa: BLE001
                    raise DataSourceError(source, f"cannot decode image {int(rows[j])} of the {name} split ({e})") from e
                if out is None:
                    return img[None]
                if img.shape[-2:] != (size, size):
                    img = _resize(img, size)
                out[start + j] = img
            bar.update(len(rows))
    return out


def _decode_one(data: bytes, channels: int) -> torch.Tensor:
    # torchvision's decoders are faster than PIL here (deprecated in torchvision 0.29
    # in favour of torchcodec, hence the PIL fallback when they are gone or fail).
    try:
        from torchvision.io import ImageReadMode, decode_image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
        if img.dtype == torch.uint8:
            return img
    except (ImportError, RuntimeError):
        pass
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    return torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], channels).permute(2, 0, 1)


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    img = F.resize(img, size, antialias=True)  # shorter side -> size
    return F.center_crop(img, [size, size])


def _assemble(train_x, train_y, val_x, val_y, test_x, test_y, class_names, source, size_note="") -> ImageData:
    y = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64)  # noqa: E731
    mean, std = _channel_stats(train_x)
    return ImageData(
        train_x=train_x.contiguous(), train_y=y(train_y), val_x=val_x.contiguous(), val_y=y(val_y),
        test_x=test_x.contiguous(), test_y=y(test_y), num_classes=len(class_names), channels=train_x.shape[1],
        image_size=train_x.shape[-1], class_names=list(class_names), mean=mean, std=std, source=source,
        size_note=size_note,
    )


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std on the [0, 1] scale, exact, from each channel's histogram."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    hist = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])]).double()
    n = hist.sum(dim=1).clamp_min(1)
    mean = (hist * values).sum(dim=1) / n
    var = (hist * values.square()).sum(dim=1) / n - mean.square()
    return mean.float(), var.clamp_min(0).sqrt().clamp_min(1e-3).float()


# ----------------------------------------------------------------------------------------
# cache (safetensors: tensors + string metadata, no pickle)


def _save_cache(data: ImageData, path: Path, settings: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(data, k).contiguous() for k in ImageData._TENSORS}
    meta = {"class_names": json.dumps(data.class_names), "source": data.source, "settings": json.dumps(settings),
            "size_note": data.size_note}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _load_cache(path: Path) -> ImageData:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    t = load_file(str(path))
    names = json.loads(meta["class_names"])
    return ImageData(
        **{k: t[k] for k in ImageData._TENSORS}, num_classes=len(names), channels=t["train_x"].shape[1],
        image_size=t["train_x"].shape[-1], class_names=names, source=meta["source"],
        size_note=meta.get("size_note", ""), from_cache=True,
    )
