"""Data sources: the synthetic default, Fashion-MNIST (local + download), CIFAR-10 download."""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lab import cli
from resnet_lab.training import data, downloads
from tests.util import assert_value_error_naming

FASHION_DIR = data.FASHION_SYSTEM_DIR


def test_synthetic_is_deterministic_normalised_and_balanced():
    a = data.synthetic(2000, 500, size=16, seed=3)
    b = data.synthetic(2000, 500, size=16, seed=3)
    c = data.synthetic(2000, 500, size=16, seed=4)
    assert a.x_train.shape == (2000, 3, 16, 16) and a.x_test.shape == (500, 3, 16, 16)
    assert a.shape[0] == data.CHANNELS["synthetic"]
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert abs(a.x_train.mean().item()) < 0.01 and abs(a.x_train.std().item() - 1) < 0.01
    counts = torch.bincount(a.y_train, minlength=10)
    assert counts.min() > 150 and len(a.classes) == 10


def test_synthetic_classes_are_learnable_and_every_sample_differs():
    d = data.synthetic(2000, 500, size=16)
    # nearest class mean on the raw pixels: far better than chance (the labels mean something)
    means = torch.stack([d.x_train[d.y_train == k].mean(0) for k in range(10)]).flatten(1)
    dist = torch.cdist(d.x_test.flatten(1), means)
    assert (dist.argmin(1) == d.y_test).float().mean().item() > 0.5
    # shift, contrast and noise: two samples of one class are far from each other
    same = d.x_train[d.y_train == 0][:2].flatten(1)
    assert (same[0] - same[1]).std() > 0.5


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fashion_folder(folder: Path, n=20) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n, 28, 28)),
              "train-labels-idx1-ubyte.gz": np.arange(n) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n // 2, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": np.arange(n // 2) % 10}
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return {name: downloads.file_md5(folder / name) for name in arrays}


def test_read_idx_roundtrip_and_truncation(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(24).reshape(2, 3, 4))
    assert data.read_idx(tmp_path / "a.gz").tolist() == np.arange(24).reshape(2, 3, 4).tolist()
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())[:-3]
    (tmp_path / "b").write_bytes(raw)
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "b")


def test_fashion_mnist_from_a_local_folder(tmp_path):
    make_fashion_folder(tmp_path)
    d = data.fashion_mnist(tmp_path, size=16, download=False)
    assert d.x_train.shape == (20, 1, 16, 16) and d.y_test.tolist() == list(range(10))
    assert d.shape[0] == data.CHANNELS["fashion_mnist"]
    assert d.classes[9] == "Ankle boot"


def test_fashion_mnist_missing_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.fashion_mnist(tmp_path, download=False)


@pytest.mark.parametrize("load", [data.fashion_mnist, data.cifar10])
def test_a_root_that_is_no_folder_is_refused_before_any_download(tmp_path, load):
    with pytest.raises(FileNotFoundError, match="root=.*nonexistent.* is not a folder"):
        load(tmp_path / "nonexistent")
    assert not (tmp_path / "nonexistent").exists()


def test_cli_data_root_that_is_no_folder_names_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--dataset", "fashion_mnist", "--data-root", str(tmp_path / "nope")])
    assert exit_.value.code == 2 and "--data-root" in capsys.readouterr().err


def test_offline_message_names_the_command_line_option_too(tmp_path):
    with pytest.raises(RuntimeError, match="--data-root"):
        downloads.download("http://127.0.0.1:9/none.gz", tmp_path / "none.gz", timeout=2)


@pytest.mark.skipif(not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists()
                    and not os.environ.get("CI"),
                    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)")
def test_real_fashion_mnist_from_debian():
    d = data.fashion_mnist(FASHION_DIR, download=False)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [6000] * 10


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder, honouring `Range: bytes=N-` (as real servers do)."""

    requests: list = []

    def do_GET(self):
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.exists():
            self.send_error(404)
            return
        body = path.read_bytes()
        asked = self.headers.get("Range")
        start = int(asked.split("=")[1].rstrip("-")) if asked else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def make_cifar_archive(path: Path, per_batch=4) -> str:
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                     b"labels": list(range(per_batch))}
            raw = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_downloads_verifies_and_extracts(server, tmp_path):
    served, url = server
    md5 = make_cifar_archive(served / "cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    cache.mkdir()
    d = data.cifar10(cache, url=url + "cifar-10-python.tar.gz", md5=md5)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.shape[0] == data.CHANNELS["cifar10"]
    assert d.classes[0] == "airplane" and (cache / "cifar-10-batches-py" / "test_batch").exists()
    # a second call reads the extracted copy: no new request
    n = len(RangeHandler.requests)
    data.cifar10(cache, url=url + "cifar-10-python.tar.gz", md5=md5)
    assert len(RangeHandler.requests) == n
    # and the extracted folder itself works as root
    assert len(data.cifar10(cache / "cifar-10-batches-py", download=False).x_test) == 4


def test_download_resumes_a_partial_file(server, tmp_path):
    served, url = server
    md5 = make_cifar_archive(served / "c.tar.gz")
    whole = (served / "c.tar.gz").read_bytes()
    target = tmp_path / "c.tar.gz"
    (tmp_path / "c.tar.gz.part").write_bytes(whole[:100])
    downloads.download(url + "c.tar.gz", target, md5)
    assert target.read_bytes() == whole and RangeHandler.requests[-1][1] == "bytes=100-"
    assert not (tmp_path / "c.tar.gz.part").exists()


def test_download_with_a_bad_checksum_retries_once_then_fails(server, tmp_path):
    served, url = server
    make_cifar_archive(served / "c.tar.gz")
    with pytest.raises(RuntimeError, match="wrong MD5"):
        downloads.download(url + "c.tar.gz", tmp_path / "c.tar.gz", "0" * 32)
    assert len(RangeHandler.requests) == 2
    assert not list(tmp_path.glob("c.tar.gz*"))


def test_corrupt_partial_file_is_replaced(server, tmp_path):
    served, url = server
    md5 = make_cifar_archive(served / "c.tar.gz")
    (tmp_path / "c.tar.gz.part").write_bytes(b"garbage" * 10)   # resumes onto junk ...
    downloads.download(url + "c.tar.gz", tmp_path / "c.tar.gz", md5)   # ... detects, starts over
    assert downloads.file_md5(tmp_path / "c.tar.gz") == md5


def test_offline_download_gives_a_clear_message(tmp_path):
    with pytest.raises(RuntimeError, match="Are you offline"):
        downloads.download("http://127.0.0.1:9/cifar.tar.gz", tmp_path / "c.tar.gz", timeout=2)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        data.cifar10(tmp_path, download=False)


def test_fashion_mnist_download_from_a_local_server(server, tmp_path, monkeypatch):
    served, url = server
    md5s = make_fashion_folder(served)
    monkeypatch.setattr(data, "FASHION_URL", url)
    monkeypatch.setattr(data, "FASHION_FILES", md5s)
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "no-debian-copy")
    d = data.fashion_mnist(size=None)
    assert d.x_train.shape == (20, 1, 28, 28)
    assert (tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()


def test_batches_cover_an_epoch_and_augment_on_device():
    d = data.synthetic(256, 16, size=16)
    batches = data.Batches(d, 64, seed=1)
    seen = torch.cat([next(batches)[1] for _ in range(4)])
    assert sorted(seen.tolist()) == sorted(d.y_train.tolist()) and batches.epoch == 1.0
    again = data.Batches(d, 64, seed=1)
    assert torch.equal(next(again)[0], data.Batches(d, 64, seed=1).__next__()[0])
    aug = data.Batches(d, 64, augment=True, seed=1)
    x, _ = next(aug)
    assert x.shape == (64, 3, 16, 16)


def test_random_crop_shifts_without_changing_content():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    assert torch.equal(data.random_crop(x, 0), x)
    out = data.random_crop(x, 2, torch.Generator().manual_seed(0))
    for img, src in zip(out, x, strict=True):
        inside = img[img > 0]
        assert set(inside.tolist()) <= set(src.flatten().tolist())   # only shifted pixels, zeros
    assert torch.equal(data.random_flip(x, torch.Generator().manual_seed(0)).abs().sum(), x.sum())


@pytest.mark.parametrize("call,words", [
    (lambda: data.load("mnist"), ["dataset='mnist'", "'cifar10'"]),
    (lambda: data.synthetic(size=4), ["size=4"]),
    (lambda: data.synthetic(n_train=0), ["n_train=0"]),
    (lambda: data.Batches(data.synthetic(100, 10, size=8), 1000), ["batch_size=1000", "100"]),
])
def test_bad_input_names_the_argument(call, words):
    assert_value_error_naming(call, words)
