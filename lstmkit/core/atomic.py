"""Artifacts on disk: atomic writes (a reader, or a process killed mid-write, sees the old file or the complete new
one, never half), JSON artifacts read back with an error naming the file, and file digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lstmkit.core.errors import ArtifactError
from lstmkit.core.jsonable import dumps


@contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to (keeping its suffix); on success rename it over `path`.

    On any error the temporary file is removed and `path` is left as it was. `durable` fsyncs before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write text atomically (durable: fsync before the rename)."""
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically, pretty-printed (see `lstmkit.core.jsonable`: numpy as plain numbers, NaN as null)."""
    atomic_write_text(path, dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON artifact; one that does not parse is an ArtifactError (a ValueError) naming the file."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is {'empty' if not text.strip() else 'not valid JSON'} ({e})") from e


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, read in blocks of `block` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
