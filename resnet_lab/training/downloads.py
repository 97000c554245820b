"""Downloading a dataset's files: resumed where a transfer broke off, checked against their
MD5 checksums, and a clear error (what to do instead) when this machine is offline."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path


def download(url: str, path: Path, md5: str | None = None, *, timeout: float = 30.0) -> Path:
    """Fetch `url` to `path`: resume a partial `.part` file, verify the MD5 checksum, and
    start over once if the file is corrupt. Raises RuntimeError with a clear message offline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    for _attempt in range(2):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = have and response.status == 206
                with open(part, "ab" if resumed else "wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:          # the .part file is already complete
                pass
            else:
                raise RuntimeError(f"could not download {url}: HTTP {err.code} {err.reason}"
                                   ) from err
        except (urllib.error.URLError, OSError) as err:
            raise RuntimeError(
                f"could not download {url} ({getattr(err, 'reason', err)}). Are you offline? "
                f"Download it elsewhere and put it at {path}, or pass root= a folder that has "
                "it (--data-root on the command line).") from err
        if md5 is None or file_md5(part) == md5:
            part.replace(path)
            return path
        part.unlink()                             # corrupt: start over once
    raise RuntimeError(f"{url} downloaded twice with the wrong MD5 checksum (expected {md5}); "
                       f"the file was removed from {path.parent}")


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
