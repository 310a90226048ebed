"""Dataset registry: the bundled ETTh2 copy, and downloads into the cache against a local HTTP server only."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import socket
import sys
import threading
from pathlib import Path

import pytest

from lstmkit import datasets
from lstmkit.datasets import REGISTRY, DatasetError, cache_dir, dataset_path, describe, get_dataset
from tests.http_server import serve

ETTH2_SHA256 = "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"
ETT_COLUMNS = ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
FIXTURE_CSV = "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n" + "".join(
    f"2016-07-01 {h:02d}:00:00,{h}.5,1.0,2.0,3.0,4.0,5.0,{30 + h}.25\n" for h in range(24))


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder in tmp_path set as LSTMKIT_CACHE_DIR (not created: the download creates it)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LSTMKIT_CACHE_DIR", str(folder))
    monkeypatch.delenv("LSTMKIT_DATASET_BASE_URL", raising=False)
    return folder


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A folder holding small ETT-shaped fixture files under the upstream names ETTh1.csv and ETTm1.csv."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in ("ETTh1.csv", "ETTm1.csv"):
        (folder / name).write_text(FIXTURE_CSV)
    return folder


def set_sha256(monkeypatch: pytest.MonkeyPatch, name: str, sha256: str | None) -> None:
    """Replace a registry entry's expected hash for the duration of a test."""
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], sha256=sha256))


def closed_port_url() -> str:
    """A loopback URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def raw_server(reply: bytes | None):
    """A loopback server for one request: sends `reply` as raw bytes and hangs up; None accepts but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake even if nobody accepts

        def answer() -> None:
            """Accept one connection, read its request, send the reply, close."""
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

        if reply is not None:
            threading.Thread(target=answer, daemon=True).start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def listing(folder: Path) -> list[str]:
    """Names in a folder, hidden ones included; empty when the folder does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_sha256_then_reuses_the_cache_without_a_request(cache, mirror, monkeypatch, capsys):
    """First use downloads and verifies; the second use reads the cache with the server gone."""
    set_sha256(monkeypatch, "etth1", sha256_of(mirror / "ETTh1.csv"))
    with serve(mirror) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base + "/")
        path = dataset_path("etth1")
    assert path == cache / "ETTh1.csv"
    assert path.read_bytes() == (mirror / "ETTh1.csv").read_bytes()
    assert listing(cache) == ["ETTh1.csv"]  # no temporary file, no .sha256 beside a file with a known hash
    err = capsys.readouterr().err
    assert f"downloading etth1 from {base}/ETTh1.csv ..." in err

    # the server is shut down: any request now would fail, so success proves the cache was used
    assert dataset_path("ETTh1") == path
    assert "downloading" not in capsys.readouterr().err


def test_unknown_hash_is_computed_and_written_beside_the_file(cache, mirror, monkeypatch, capsys):
    """A file without a published hash is kept, with its computed sha256 recorded and announced."""
    assert REGISTRY["ettm1"].sha256 is None
    with serve(mirror) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        path = dataset_path("ettm1")
    actual = sha256_of(mirror / "ETTm1.csv")
    assert listing(cache) == ["ETTm1.csv", "ETTm1.csv.sha256"]
    assert (cache / "ETTm1.csv.sha256").read_text() == f"{actual}  ETTm1.csv\n"
    assert path.read_bytes() == (mirror / "ETTm1.csv").read_bytes()
    assert f"sha256 is {actual}" in capsys.readouterr().err


def test_sha256_mismatch_names_both_hashes_and_keeps_nothing(cache, mirror, monkeypatch):
    """A download whose hash differs from the registry's is refused and removed."""
    expected = "0" * 64
    set_sha256(monkeypatch, "etth1", expected)
    with serve(mirror) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError) as info:
            dataset_path("etth1")
    message = str(info.value)
    assert expected in message and sha256_of(mirror / "ETTh1.csv") in message
    assert "etth1" in message and "\n" not in message
    assert listing(cache) == []


def test_unreachable_server_gives_the_offline_message_and_keeps_nothing(cache, monkeypatch):
    """Connection refused reads as a possibly offline machine, with both ways out."""
    base = closed_port_url()
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
    with pytest.raises(DatasetError) as info:
        dataset_path("etth1")
    message = str(info.value)
    assert message.startswith(f"cannot download etth1 from {base}/ETTh1.csv (")
    assert "this machine may be offline" in message
    assert f"download the file yourself to {cache / 'ETTh1.csv'}" in message
    assert "use data.source: csv with data.path" in message
    assert "\n" not in message
    assert listing(cache) == []
    assert not cache.exists()  # nothing at all was created


def test_stalled_server_times_out_with_the_offline_message(cache, monkeypatch):
    """A server that accepts the connection but never answers is abandoned after the timeout."""
    monkeypatch.setattr(datasets, "TIMEOUT_S", 0.5)
    with raw_server(None) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError, match=r"cannot download etth1 .*timed out.*may be offline"):
            dataset_path("etth1")
    assert listing(cache) == []


def test_truncated_download_is_not_cached(cache, monkeypatch):
    """A body shorter than its Content-Length is refused even where no hash would catch it (ETTm1)."""
    assert REGISTRY["ettm1"].sha256 is None
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" + FIXTURE_CSV.encode()
    with raw_server(reply) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError, match=rf"cannot download ettm1 from {base}/ETTm1.csv \(connection closed "
                                               rf"after {len(FIXTURE_CSV)} of 100000 bytes\): this machine may be offline"):
            dataset_path("ettm1")
    assert listing(cache) == []


def test_download_is_written_to_a_temporary_file_then_renamed(cache, mirror, monkeypatch):
    """While bytes arrive, the final cache path does not exist (an interrupted download is never taken as cached)."""
    seen = []
    copy = datasets._copy_hashing

    def spy(response, out):
        """Record where the bytes go and whether the final file exists yet, then copy as usual."""
        seen.append((Path(out.name), (cache / "ETTm1.csv").exists()))
        return copy(response, out)

    monkeypatch.setattr(datasets, "_copy_hashing", spy)
    with serve(mirror) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        path = dataset_path("ettm1")
    [(written, final_existed)] = seen
    assert written.parent == cache and written != path and not final_existed
    assert not written.exists() and path.is_file()


def test_missing_file_on_the_server_is_a_clear_http_error(cache, tmp_path, monkeypatch):
    """A 404 names the URL and the status instead of caching an error page."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve(empty) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError) as info:
            dataset_path("ettm2")
    message = str(info.value)
    assert f"cannot download ettm2 from {base}/ETTm2.csv (HTTP 404" in message
    assert "LSTMKIT_DATASET_BASE_URL" in message and str(cache / "ETTm2.csv") in message
    assert listing(cache) == []


def test_cached_file_with_the_wrong_hash_is_reported(cache, monkeypatch):
    """A file placed in the cache by hand that is not the published one fails before any use."""
    cache.mkdir()
    (cache / "ETTh1.csv").write_text("<html>not the raw file</html>\n")
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", closed_port_url())
    with pytest.raises(DatasetError, match=r"cached file .*ETTh1\.csv for etth1 has sha256 [0-9a-f]{64}, "
                                           r"expected f18de3ad.*delete it"):
        dataset_path("etth1")


def test_unknown_name_lists_the_known_datasets():
    """A typo gets the list of valid names."""
    with pytest.raises(DatasetError, match=r"unknown dataset 'etth3'; known datasets: etth1, etth2, ettm1, ettm2$"):
        dataset_path("etth3")
    with pytest.raises(DatasetError, match="known datasets"):
        describe("nope")


def test_bundled_etth2_is_the_unmodified_published_file(cache, monkeypatch):
    """ETTh2 resolves offline to the packaged copy: published hash, 17,420 rows, the ETT columns."""
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", closed_port_url())  # any download attempt would fail
    path = dataset_path("etth2")
    assert path.parent == Path(datasets.__file__).parent / "bundled"
    assert sha256_of(path) == ETTH2_SHA256 == REGISTRY["etth2"].sha256
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ETT_COLUMNS
    assert len(rows) - 1 == 17_420
    assert rows[1][0] == "2016-07-01 00:00:00" and rows[-1][0] == "2018-06-26 19:00:00"
    d = get_dataset("etth2")
    assert [d.date_column, *d.features, d.target] == ETT_COLUMNS
    assert not cache.exists()
    for name in ("ETDataset-LICENSE.txt", "CITATION.md"):
        assert (path.parent / name).is_file()
    assert "Attribution-NoDerivatives 4.0" in (path.parent / "ETDataset-LICENSE.txt").read_text()


def test_registry_entries_point_at_the_etdataset_repository():
    """Every entry reads the ETT layout; only ETTh2 is bundled; URLs are the repository's raw files."""
    assert sorted(REGISTRY) == ["etth1", "etth2", "ettm1", "ettm2"]
    for name, d in REGISTRY.items():
        assert d.name == name
        assert d.url == f"https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{d.filename}"
        assert d.bundled == (name == "etth2")
        assert d.frequency == ("h" if name.startswith("etth") else "15min")
        assert d.features == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL") and d.target == "OT"
    assert REGISTRY["etth1"].sha256 == "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY["etth1"].sha256 = None  # type: ignore[misc]


def test_describe_gives_licence_and_citation():
    """The report can credit the data from describe()."""
    info = describe("etth2")
    assert "CC BY-ND 4.0" in info["licence"]
    assert "Informer" in info["citation"] and "AAAI 2021" in info["citation"]
    assert info["source"].endswith("/ETT-small/ETTh2.csv") and info["bundled"] is True


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    """LSTMKIT_CACHE_DIR wins, then XDG_CACHE_HOME, then ~/.cache; empty values count as unset."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LSTMKIT_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.setenv("LSTMKIT_CACHE_DIR", "")
    assert cache_dir() == tmp_path / "xdg" / "lstmkit" / "datasets"
    monkeypatch.delenv("LSTMKIT_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "lstmkit" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "lstmkit" / "datasets"


def test_no_tensorflow_import():
    """The registry stays light: importing it pulls in neither TensorFlow nor pandas."""
    import subprocess

    code = "import sys, lstmkit.datasets; print('tensorflow' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
