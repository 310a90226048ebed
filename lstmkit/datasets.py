"""Named real datasets usable as `data.source`: ETTh2 ships with the package, the other ETT files are downloaded once.

Downloads go to a per-user cache (see `cache_dir`), are checked against a known sha256 where there is one, and
appear there only when complete (a temporary file is renamed into place), so an interrupted or failed download
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

UPSTREAM_BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"
BASE_URL_ENV = "LSTMKIT_DATASET_BASE_URL"  # mirrors and tests: the file name is appended to this URL
CACHE_DIR_ENV = "LSTMKIT_CACHE_DIR"
TIMEOUT_S = 30.0  # seconds a connection or a read may stall before the download is abandoned
_CHUNK = 1 << 16

ETT_FEATURES = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
ETT_LICENCE = "CC BY-ND 4.0 (Creative Commons Attribution-NoDerivatives 4.0 International)"
ETT_CITATION = ('Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting", '
                "AAAI 2021")


class DatasetError(ValueError):
    """A dataset that cannot be resolved, downloaded or verified, with what to do about it."""


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One named dataset: where its file comes from, how to check it, and how to read and credit it."""

    name: str
    filename: str
    url: str  # upstream address of the file (its provenance, also for the bundled one)
    sha256: str | None  # None where no published hash is known
    bundled: bool  # shipped inside the package (lstmkit/bundled) rather than downloaded
    date_column: str = "date"
    target: str = "OT"
    features: tuple[str, ...] = ETT_FEATURES
    frequency: str = "h"  # pandas offset alias: "h" or "15min"
    description: str = ""
    licence: str = ETT_LICENCE
    citation: str = ETT_CITATION


def _ett(name: str, stem: str, sha256: str | None, frequency: str, description: str, bundled: bool = False) -> Dataset:
    """A registry entry for one file of the ETDataset repository's ETT-small folder."""
    filename = f"{stem}.csv"
    return Dataset(name=name, filename=filename, url=f"{UPSTREAM_BASE_URL}/{filename}", sha256=sha256,
                   bundled=bundled, frequency=frequency, description=description)


REGISTRY: dict[str, Dataset] = {d.name: d for d in [
    _ett("etth1", "ETTh1", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", "h",
         "Electricity Transformer Temperature, station 1, hourly, 2016-07 to 2018-06 (downloaded on first use)"),
    _ett("etth2", "ETTh2", "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b", "h",
         "Electricity Transformer Temperature, station 2, hourly: 17,420 rows from 2016-07-01 00:00 to "
         "2018-06-26 19:00 (bundled, works offline)", bundled=True),
    _ett("ettm1", "ETTm1", None, "15min",
         "Electricity Transformer Temperature, station 1, every 15 minutes, 2016-07 to 2018-06 (downloaded on first use)"),
    _ett("ettm2", "ETTm2", None, "15min",
         "Electricity Transformer Temperature, station 2, every 15 minutes, 2016-07 to 2018-06 (downloaded on first use)"),
]}


def get_dataset(name: str) -> Dataset:
    """The registry entry for a name (case-insensitive), or a DatasetError listing the known names."""
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise DatasetError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def cache_dir() -> Path:
    """Download cache: $LSTMKIT_CACHE_DIR, else $XDG_CACHE_HOME/lstmkit/datasets, else ~/.cache/lstmkit/datasets."""
    own = os.environ.get(CACHE_DIR_ENV)
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lstmkit" / "datasets"


def download_url(dataset: Dataset) -> str:
    """Where the file is fetched from: the mirror in $LSTMKIT_DATASET_BASE_URL plus the file name, else upstream."""
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{dataset.filename}" if base else dataset.url


def bundled_file(filename: str) -> Path:
    """A file shipped inside the installed package's bundled/ folder."""
    path = Path(str(resources.files("lstmkit") / "bundled" / filename))
    if not path.is_file():
        raise DatasetError(f"bundled file {filename} is missing from the installed lstmkit package (looked for {path}): "
                           "reinstall lstmkit")
    return path


def dataset_path(name: str) -> Path:
    """Local path of a dataset's CSV file: the bundled copy, or the cached one (downloaded on first use)."""
    dataset = get_dataset(name)
    if dataset.bundled:
        return bundled_file(dataset.filename)
    path = cache_dir() / dataset.filename
    if path.is_file():
        _check_cached(dataset, path)
        return path
    return _download(dataset, path)


def describe(name: str) -> dict:
    """What a report needs to credit a dataset: description, source, licence and citation."""
    d = get_dataset(name)
    return {"name": d.name, "description": d.description, "file": d.filename, "source": d.url,
            "bundled": d.bundled, "frequency": d.frequency, "sha256": d.sha256,
            "licence": d.licence, "citation": d.citation}


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_cached(dataset: Dataset, path: Path) -> None:
    """Fail clearly when a cached file (perhaps saved by hand) differs from the known sha256."""
    if dataset.sha256 is None:
        return
    actual = _sha256_file(path)
    if actual != dataset.sha256:
        raise DatasetError(f"cached file {path} for {dataset.name} has sha256 {actual}, expected {dataset.sha256}: "
                           f"delete it to download it again, or save the raw CSV from {dataset.url} there")


def _fallback(path: Path) -> str:
    """The advice every download failure ends with."""
    return f"download the file yourself to {path}, or use data.source: csv with data.path"


def _reason(error: BaseException) -> str:
    """Short cause of a network error (URLError wraps the socket error in `reason`)."""
    cause = getattr(error, "reason", None) or error
    return str(cause) or type(cause).__name__


def _copy_hashing(response: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    """Stream a response into a file; returns the hex sha256 and the byte count of what was written."""
    digest, size = hashlib.sha256(), 0
    while chunk := response.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _offline(failed: str, reason: str, path: Path) -> DatasetError:
    """The error for a download cut off by the network (refused, unreachable, stalled or truncated)."""
    return DatasetError(f"{failed} ({reason}): this machine may be offline; " + _fallback(path))


def _download(dataset: Dataset, path: Path) -> Path:
    """Fetch a dataset into the cache: temporary file, sha256 check where known, then an atomic rename."""
    url = download_url(dataset)
    failed = f"cannot download {dataset.name} from {url}"
    print(f"downloading {dataset.name} from {url} ...", file=sys.stderr, flush=True)
    tmp: Path | None = None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            tmp = _temp_file(dataset, path)
            with open(tmp, "wb") as out:
                actual, size = _copy_hashing(response, out)
            announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and size != int(announced):  # urllib returns a cut-off body without complaint
            raise _offline(failed, f"connection closed after {size} of {announced} bytes", path)
        if dataset.sha256 is not None and actual != dataset.sha256:
            raise DatasetError(f"sha256 mismatch for {dataset.name} downloaded from {url}: expected {dataset.sha256}, "
                               f"got {actual}; the file was not kept (the source may hold another version): "
                               + _fallback(path))
        os.replace(tmp, path)
        tmp = None
    except urllib.error.HTTPError as e:
        e.close()
        mirror = f" (check {BASE_URL_ENV}, set to {os.environ[BASE_URL_ENV]})" if os.environ.get(BASE_URL_ENV) else ""
        raise DatasetError(f"{failed} (HTTP {e.code} {e.reason}): the file is not available there{mirror}; "
                           + _fallback(path)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _offline(failed, _reason(e), path) from None
    except OSError as e:  # neither the network nor the cache folder as such, e.g. a full disk while writing
        raise DatasetError(f"{failed} to {path} ({_reason(e)}): " + _fallback(path)) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if dataset.sha256 is None:
        _record_hash(dataset, path, actual)
    return path


def _temp_file(dataset: Dataset, path: Path) -> Path:
    """A new hidden temporary file beside the final cache path (so the rename is atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise DatasetError(f"cannot write {dataset.name} to the cache folder {path.parent} ({e}): set {CACHE_DIR_ENV} "
                           "to a writable folder") from None
    os.close(fd)
    return Path(name)


def _record_hash(dataset: Dataset, path: Path, actual: str) -> None:
    """Write the computed hash as <file>.sha256 (sha256sum format) and say so, for files without a published one."""
    from lstmkit.runfolder import atomic_write_text

    sidecar = path.with_name(f"{path.name}.sha256")
    atomic_write_text(sidecar, f"{actual}  {path.name}\n")
    print(f"note: no published sha256 for {dataset.name}; the downloaded file's sha256 is {actual} (written to "
          f"{sidecar}); compare it with a trusted copy", file=sys.stderr, flush=True)
