"""Datasets as tensors, and batches drawn on the training device.

- `synthetic()`: the embedded default. Ten classes of blurred random patterns, shifted, with
  random contrast and noise: made in a fraction of a second, no download, and hard enough that
  depth and skip connections visibly matter within a CPU minute.
- `fashion_mnist()`: the real Fashion-MNIST from local IDX files (Debian's
  `dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist) or downloaded.
- `cifar10()`: the official python-format archive, downloaded (resumable, checksummed) or read
  from a folder you give.

Everything is normalised per channel with the training set's statistics. `Batches` keeps the
whole training set on the device and crops/flips there, so no Python loader starves a GPU.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nets.checks import check_choice, check_count
from .downloads import download, file_md5

CACHE = Path(os.environ.get("RESNET_LAB_DATA", Path.home() / ".cache" / "resnet_lab"))
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {  # file: md5 of the upstream download
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
DATASETS = ("synthetic", "fashion_mnist", "cifar10")
BEST_FIRST = ("cifar10", "fashion_mnist", "synthetic")   # He et al.'s set first, the built-in last
CHANNELS = {"synthetic": 3, "fashion_mnist": 1, "cifar10": 3}   # colour channels of each set


@dataclass
class Dataset:
    """A labelled image set as tensors (N, C, H, W), normalised per channel."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def net_options(self) -> dict[str, int]:
        """What a net needs to read these images and answer with these classes:
        `cifar_resnet(20, **images.net_options)`."""
        return {"in_channels": self.shape[0], "num_classes": len(self.classes)}

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: {len(self.x_train)} train / {len(self.x_test)} test "
                f"images of {list(self.shape)}, {len(self.classes)} classes)")


def _finish(name: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
            y_test: torch.Tensor, classes: list[str], size: int | None, n_train: int | None,
            n_test: int | None) -> Dataset:
    """Subset, resize and normalise with the training set's per-channel statistics. A smaller
    `size` average-pools; a larger one pads with zeros around the image (28 -> 32, as LeNet-5
    did for MNIST), so no pixel is invented."""
    for arg, value in (("size", size), ("n_train", n_train), ("n_test", n_test)):
        check_count(arg, value, allow_none=True)
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    if size is not None and size < x_train.shape[-1]:
        x_train = F.adaptive_avg_pool2d(x_train, size)
        x_test = F.adaptive_avg_pool2d(x_test, size)
    elif size is not None and size > x_train.shape[-1]:
        before = (size - x_train.shape[-1]) // 2
        after = size - x_train.shape[-1] - before
        x_train = F.pad(x_train, (before, after, before, after))
        x_test = F.pad(x_test, (before, after, before, after))
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    return Dataset(name, ((x_train - mean) / std).contiguous(), y_train.long(),
                   ((x_test - mean) / std).contiguous(), y_test.long(), classes,
                   mean.flatten().tolist(), std.flatten().tolist())


# ---------------------------------------------------------------------------------------------
# The embedded synthetic set


def synthetic(n_train: int = 20_000, n_test: int = 2_000, *, size: int = 32, channels: int = 3,
              num_classes: int = 10, noise: float = 1.0, seed: int = 0) -> Dataset:
    """Ten (num_classes) classes of Gaussian-blurred random templates; each sample is its
    class template shifted by up to ±2 px, with contrast in [0.5, 1.5] and N(0, noise²) added.

    Deterministic for a seed. 20,000 samples of 32x32 RGB take well under a second.
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size={size!r} is not allowed; use a whole number >= 8")
    for arg, value in (("n_train", n_train), ("n_test", n_test), ("channels", channels),
                       ("num_classes", num_classes)):
        check_count(arg, value)
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, channels, size, size, generator=g)
    sigma = size / 16
    r = torch.arange(-3 * int(sigma + 1), 3 * int(sigma + 1) + 1, dtype=torch.float32)
    kernel = torch.exp(-r**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    pad = len(r) // 2
    blur = templates.reshape(-1, 1, size, size)
    blur = F.conv2d(F.pad(blur, (pad, pad, 0, 0), mode="circular"), kernel.view(1, 1, 1, -1))
    blur = F.conv2d(F.pad(blur, (0, 0, pad, pad), mode="circular"), kernel.view(1, 1, -1, 1))
    templates = blur.reshape(num_classes, channels, size, size)
    templates = templates / templates.std(dim=(1, 2, 3), keepdim=True)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = random_crop(templates[y], 2, g)                          # shift by up to ±2 px
        x = x * torch.empty(n, 1, 1, 1).uniform_(0.5, 1.5, generator=g)
        return x + noise * torch.randn(x.shape, generator=g), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    classes = [f"pattern {i}" for i in range(num_classes)]
    return _finish("synthetic", x_train, y_train, x_test, y_test, classes, None, None, None)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4).astype(int)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {data.size} bytes for shape {tuple(dims)}")
    return data.reshape(dims)


def _existing(root: Path | None) -> Path | None:
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"root={str(root)!r} is not a folder; give the folder that holds "
                                "the dataset's files (--data-root on the command line)")
    return root


def _fashion_folder(root: Path | None, download_ok: bool) -> Path:
    candidates = [Path(root)] if root is not None else [CACHE / "fashion-mnist",
                                                        FASHION_SYSTEM_DIR]
    for folder in candidates:
        if all((folder / name).exists() for name in FASHION_FILES):
            return folder
    if not download_ok:
        raise FileNotFoundError(
            f"Fashion-MNIST files ({', '.join(FASHION_FILES)}) not found in "
            f"{', '.join(map(str, candidates))}; pass download=True or install Debian's "
            "dataset-fashion-mnist")
    folder = candidates[0]
    for name, md5 in FASHION_FILES.items():
        if not (folder / name).exists():
            download(FASHION_URL + name, folder / name, md5)
    return folder


def fashion_mnist_here() -> bool:
    """Whether Fashion-MNIST can be read without a download: in the cache folder or where
    Debian's dataset-fashion-mnist puts it."""
    try:
        _fashion_folder(None, download_ok=False)
    except FileNotFoundError:
        return False
    return True


def fashion_mnist(root: str | Path | None = None, *, size: int | None = 28,
                  n_train: int | None = None, n_test: int | None = None,
                  download: bool = True) -> Dataset:
    """The real Fashion-MNIST (60,000 + 10,000 grey 28x28 images of clothes, 10 classes).

    Looks in `root`, else in the cache folder and /usr/share/datasets/fashion-mnist; downloads
    into the cache when missing and `download` is true. `size=16` average-pools to 16x16.
    """
    folder = _fashion_folder(_existing(Path(root) if root is not None else None), download)
    arrays = [torch.from_numpy(read_idx(folder / name).copy()) for name in FASHION_FILES]
    x_train, y_train, x_test, y_test = arrays
    to_float = lambda x: x.float().div(255).unsqueeze(1)
    return _finish("fashion_mnist", to_float(x_train), y_train, to_float(x_test), y_test,
                   FASHION_CLASSES, size, n_train, n_test)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_folder(root: Path | None, download_ok: bool, url: str, md5: str) -> Path:
    base = Path(root) if root is not None else CACHE
    extracted = base / "cifar-10-batches-py"
    if base.name == "cifar-10-batches-py" and (base / "test_batch").exists():
        return base
    if (extracted / "test_batch").exists():
        return extracted
    archive = base / "cifar-10-python.tar.gz"
    if not archive.exists():
        if not download_ok:
            raise FileNotFoundError(f"CIFAR-10 not found in {base}; pass download=True, or "
                                    "root= a folder with cifar-10-python.tar.gz or its "
                                    "extracted cifar-10-batches-py")
        download(url, archive, md5)
    elif md5 and file_md5(archive) != md5:
        raise RuntimeError(f"{archive} has the wrong MD5 checksum (expected {md5}); delete it "
                           "and try again")
    with tarfile.open(archive) as tar:
        tar.extractall(base, filter="data")
    if not (extracted / "test_batch").exists():
        raise RuntimeError(f"{archive} did not contain cifar-10-batches-py/test_batch")
    return extracted


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    x = torch.from_numpy(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
    return x, torch.tensor(batch[b"labels"])


def cifar10(root: str | Path | None = None, *, size: int | None = 32,
            n_train: int | None = None, n_test: int | None = None, download: bool = True,
            url: str = CIFAR_URL, md5: str = CIFAR_MD5) -> Dataset:
    """CIFAR-10 (50,000 + 10,000 colour 32x32 images, 10 classes), the set of He et al. §4.2.

    Reads `root` (a folder with the archive or the extracted `cifar-10-batches-py`), else the
    cache folder; downloads the official archive there (checksummed, resumable) when missing.
    """
    folder = _cifar_folder(_existing(Path(root) if root is not None else None), download, url,
                           md5)
    parts = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)
             if (folder / f"data_batch_{i}").exists()]
    if not parts:
        raise RuntimeError(f"{folder} has no data_batch_1 ... data_batch_5")
    x_train = torch.cat([p[0] for p in parts]).float().div(255)
    y_train = torch.cat([p[1] for p in parts])
    x_test, y_test = _read_cifar_batch(folder / "test_batch")
    return _finish("cifar10", x_train, y_train, x_test.float().div(255), y_test,
                   CIFAR_CLASSES, size, n_train, n_test)


def load(name: str, **kwargs) -> Dataset:
    """Load a dataset by name: "synthetic", "fashion_mnist" or "cifar10"."""
    check_choice("dataset", name, DATASETS)
    return {"synthetic": synthetic, "fashion_mnist": fashion_mnist, "cifar10": cifar10}[name](
        **kwargs)


def first_loadable(names: Sequence[str], *, download: bool = False, **options
                   ) -> tuple[Dataset, str]:
    """The first of `names` that can be had, loaded with `options` (size, n_train, ...): the
    built-in synthetic set always, a real one when it is on this machine or, with `download`,
    when it can be downloaded. Returns it and why the ones before it could not be had
    ("first choice" when it is the first)."""
    reasons = []
    for name in names:
        where = {} if name == "synthetic" else {"download": download}
        try:
            return load(name, **options, **where), "; ".join(reasons) or "first choice"
        except (RuntimeError, FileNotFoundError, OSError) as err:
            reasons.append(f"{name} not available ({err})")
    raise RuntimeError("no dataset could be loaded: " + "; ".join(reasons))


# ---------------------------------------------------------------------------------------------
# Batches on the device, with augmentation there


def _offsets(n: int, high: int, generator: torch.Generator | None, device: torch.device
             ) -> torch.Tensor:
    """n random whole numbers in [0, high), drawn with `generator` (on its device)."""
    where = generator.device if generator is not None else "cpu"
    return torch.randint(0, high, (n, 1, 1), generator=generator, device=where).to(device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Zero-pad each image by `padding` and cut a random window of the original size: the
    whole batch at once, on x's device."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = _offsets(n, 2 * padding + 1, generator, x.device)
    dx = _offsets(n, 2 * padding + 1, generator, x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(n, h, w)
    flat = (rows * (w + 2 * padding) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, flat).view(n, c, h, w)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    flip = _offsets(len(x), 2, generator, x.device).view(-1, 1, 1, 1) == 1
    return torch.where(flip, x.flip(-1), x)


class Batches:
    """An endless stream of shuffled training batches, drawn and augmented on `device`.

    `augment=True` applies He et al.'s CIFAR augmentation: pad by size/8 and crop, then
    flip horizontally. Deterministic for a seed.
    """

    def __init__(self, data: Dataset, batch_size: int = 128, *, device: str | torch.device = "cpu",
                 augment: bool = False, seed: int = 0):
        if not isinstance(batch_size, int) or not 1 <= batch_size <= len(data.x_train):
            raise ValueError(f"batch_size={batch_size!r} is not allowed; use 1 to "
                             f"{len(data.x_train)} (the training set's size)")
        self.device = torch.device(device)
        self.x = data.x_train.to(self.device)
        self.y = data.y_train.to(self.device)
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long, device=self.device)
        self.position = 0
        self.seen = 0

    @property
    def epoch(self) -> float:
        """Training images drawn so far, in epochs."""
        return self.seen / len(self.x)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.x), generator=self.generator, device=self.device)
            self.position = 0
        index = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        self.seen += self.batch_size
        x, y = self.x[index], self.y[index]
        if self.augment:
            x = random_flip(random_crop(x, max(1, x.shape[-1] // 8), self.generator),
                            self.generator)
        return x, y
