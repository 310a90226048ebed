"""Dataset registry: the bundled ETTh2 copy, and downloads into the cache against a local HTTP server only."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import socket
import sys
import threading
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lstmkit.core.errors import DatasetError
from lstmkit.data import datasets
from lstmkit.data.datasets import REGISTRY, cache_dir, dataset_path, describe, get_dataset
from tests.data.archives import (
    JENA_CSV,
    JENA_GAP,
    JENA_HEADER,
    JENA_MEMBER,
    JENA_SENTINEL_ROW,
    JENA_START,
    JENA_STEPS,
    JENA_ZIP,
    jena_row,
    jena_zip,
)
from tests.http_server import serve
from tests.paths import REPO

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
    import pooch

    seen = []
    download = pooch.HTTPDownloader.__call__

    def spy(self, url, output_file, pooch_, check_only=False):
        """Record where the bytes go and whether the final file exists yet, then download as usual."""
        seen.append((Path(str(output_file)), (cache / "ETTm1.csv").exists()))
        return download(self, url, output_file, pooch_, check_only)

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", spy)
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
    with pytest.raises(DatasetError, match=r"unknown dataset 'etth3'; known datasets: electricity, etth1, etth2, "
                                           r"ettm1, ettm2, jena_climate$"):
        dataset_path("etth3")
    with pytest.raises(DatasetError, match="known datasets"):
        describe("nope")


def test_bundled_etth2_is_the_unmodified_published_file(cache, monkeypatch):
    """ETTh2 resolves offline to the packaged copy: published hash, 17,420 rows, the ETT columns."""
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", closed_port_url())  # any download attempt would fail
    path = dataset_path("etth2")
    assert path.parent == Path(datasets.__file__).parents[1] / "bundled"
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
    """Every ETT entry reads the ETT layout; only ETTh2 is bundled; URLs are the repository's raw files."""
    assert sorted(REGISTRY) == ["electricity", "etth1", "etth2", "ettm1", "ettm2", "jena_climate"]
    for name, d in REGISTRY.items():
        if not name.startswith("ett"):
            continue
        assert d.prepare is None and d.download_name is None
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

    code = "import sys, lstmkit.data.datasets; print('tensorflow' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- zipped datasets converted on first use: jena_climate and electricity -------------------------------------------

ELEC_ZIP, ELEC_MEMBER = "electricityloaddiagrams20112014.zip", "LD2011_2014.txt"
ELEC_CSV = "electricity_hourly_2012_2014.lstmkit-v1.csv"
ELEC_SPAN = ("2012-01-01 00:00:00", "2012-01-03 23:00:00")  # laid over the real 2012-2014 span for the fixture
ELEC_START = datetime(2011, 12, 31, 20, 15)  # first reading: it closes the quarter hour 20:00-20:15
ELEC_QUARTERS = 4 * 24 * 3 + 16              # to 2012-01-04 00:00
BLOCK = {datetime(2012, 1, 1, 5, 15): "1,5", datetime(2012, 1, 1, 5, 30): "2,25",
         datetime(2012, 1, 1, 5, 45): "3", datetime(2012, 1, 1, 6, 0): "4,75"}  # MT_001, hour 05:00: mean 2.875


def elec_text() -> str:
    """LD2011_2014.txt in miniature: `;`-separated, decimal commas, readings stamped at the end of each quarter hour.

    MT_001 and MT_003 consume before 2012 (kept); MT_002 starts in 2012 (dropped); every client reads zero in the
    hour starting 2012-01-02 01:00 (as in the spring daylight-saving hour), and in one reading, stamped
    2012-01-03 10:30 (a dead quarter hour that does not fill its hour: the hour 10:00 is dropped all the same).
    """
    lines = ['"";"MT_001";"MT_002";"MT_003"']
    for i in range(ELEC_QUARTERS):
        t = ELEC_START + timedelta(minutes=15 * i)
        hour = (t - timedelta(minutes=15)).replace(minute=0)
        mt1 = BLOCK.get(t, f"{1 + (i % 8) / 4:g}".replace(".", ","))
        mt2 = "0" if t <= datetime(2012, 1, 1) else f"{5 + i % 3},5"
        mt3 = f"{10 + i % 4},125"
        if hour == datetime(2012, 1, 2, 1) or t == datetime(2012, 1, 3, 10, 30):
            mt1 = mt2 = mt3 = "0"
        lines.append(f'"{t:%Y-%m-%d %H:%M:%S}";{mt1};{mt2};{mt3}')
    return "\n".join(lines) + "\n"


def elec_zip(folder: Path) -> Path:
    """The fixture packed like the UCI download."""
    path = folder / ELEC_ZIP
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(ELEC_MEMBER, elec_text())
    return path


@pytest.fixture
def zips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One mirror folder serving both archives under their upstream names; the electricity span cut to the fixture."""
    folder = tmp_path / "zips"
    folder.mkdir()
    jena_zip(folder)
    elec_zip(folder)
    monkeypatch.setattr(datasets, "ELECTRICITY_SPAN", ELEC_SPAN)
    return folder


def read_prepared(path: Path):
    """A converted CSV as pandas reads it: `date` parsed, values as floats."""
    import pandas as pd

    return pd.read_csv(path, index_col="date", parse_dates=["date"])


def test_both_archives_download_from_one_mirror_and_convert_once(cache, zips, monkeypatch, capsys):
    """One base URL serves both file names; each archive is kept with its computed hash beside the converted CSV."""
    with serve(zips) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        jena, elec = dataset_path("jena_climate"), dataset_path("electricity")
    assert (jena, elec) == (cache / JENA_CSV, cache / ELEC_CSV)
    assert listing(cache) == sorted([ELEC_CSV, ELEC_ZIP, f"{ELEC_ZIP}.sha256", JENA_CSV, JENA_ZIP, f"{JENA_ZIP}.sha256"])
    assert (cache / JENA_ZIP).read_bytes() == (zips / JENA_ZIP).read_bytes()
    err = capsys.readouterr().err
    assert f"downloading jena_climate from {base}/{JENA_ZIP} ..." in err
    assert f"downloading electricity from {base}/{ELEC_ZIP} ..." in err
    assert f"converting {JENA_ZIP} into {JENA_CSV}" in err and "2 value(s) of -9999" not in err
    assert "1 value(s) of -9999 in 'wv (m/s)', 1 value(s) of -9999 in 'max. wv (m/s)' written as missing" in err
    assert "kept 2 of 3 clients" in err and "2 hour(s) holding a reading with no consumption" in err

    # server gone and mirror unreachable: both resolve from the cache, without a download or a conversion
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", closed_port_url())
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert (dataset_path("jena_climate"), dataset_path("ELECTRICITY")) == (jena, elec)
    assert capsys.readouterr().err == ""
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_jena_dates_are_read_day_first_and_sentinels_become_missing(cache, zips, monkeypatch):
    """13.01.2009 is January 13th and 01.02.2009 February 1st; -9999 is empty; rows stay as published."""
    with serve(zips) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        frame = read_prepared(dataset_path("jena_climate"))
    header = (cache / JENA_CSV).read_text().splitlines()[0]
    assert header == "date," + JENA_HEADER.split(",", 1)[1]  # the published names, brackets and all
    assert len(frame) == JENA_STEPS - (JENA_GAP[1] - JENA_GAP[0]) + 1  # gap and duplicate kept for the profile
    assert frame.index[0] == datetime(2009, 1, 12, 0, 10) and frame.index[-1] == datetime(2009, 2, 2, 0, 0)
    assert datetime(2009, 1, 13, 12, 0) in frame.index and datetime(2009, 2, 1, 0, 0) in frame.index
    assert frame.index.month.tolist().count(2) == 144 + 1  # 2009-02-01 00:00 to 02-02 00:00: no month/day swap
    assert frame.index.duplicated().sum() == 1
    stamp = JENA_START + timedelta(minutes=10 * JENA_SENTINEL_ROW)
    assert frame.loc[stamp, ["wv (m/s)", "max. wv (m/s)"]].isna().all()
    assert frame.drop(index=stamp).notna().all().all()
    assert frame.loc[stamp, "T (degC)"] == pytest.approx(float(jena_row(stamp, JENA_SENTINEL_ROW).split(",")[2]))


def test_jena_profile_repairs_the_published_faults(cache, zips, monkeypatch):
    """configs/jena_climate.yaml loads the fixture on a regular 10-minute grid, each repair noted; odd names work."""
    from lstmkit.config import load_config, parse_override
    from lstmkit.data.series import load_series

    features = "data.features=[p (mbar), rho (g/m**3), max. wv (m/s), wv (m/s), rh (%)]"  # as typed after --set
    key, value = parse_override(features)
    cfg = load_config(REPO / "configs" / "jena_climate.yaml", {key: value})
    with serve(zips) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        series = load_series(cfg)
    frame = series.frame
    assert list(frame.columns) == ["p (mbar)", "rho (g/m**3)", "max. wv (m/s)", "wv (m/s)", "rh (%)", "T (degC)"]
    assert len(frame) == JENA_STEPS and frame.index.freqstr == "10min" and frame.notna().all().all()
    stamp = JENA_START + timedelta(minutes=10 * JENA_SENTINEL_ROW)
    before, after = frame["wv (m/s)"].iloc[JENA_SENTINEL_ROW - 1], frame["wv (m/s)"].iloc[JENA_SENTINEL_ROW + 1]
    assert frame.loc[stamp, "wv (m/s)"] == pytest.approx((before + after) / 2)  # interpolated in time
    notes = " ".join(series.notes).lower()
    assert "duplicate" in notes and "gap" in notes and "'wv (m/s)'" in notes and "'max. wv (m/s)'" in notes
    assert "jena_climate" in series.origin


def test_electricity_is_hourly_kwh_from_the_quarter_hours(cache, zips, monkeypatch):
    """Each hour is the mean of its four kW readings, labelled by its start; late clients dropped; dead hour empty."""
    with serve(zips) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        frame = read_prepared(dataset_path("electricity"))
    assert list(frame.columns) == ["MT_001", "MT_003", "total"]  # MT_002 only starts in 2012
    assert frame.index[0] == datetime(2012, 1, 1, 0) and frame.index[-1] == datetime(2012, 1, 3, 23)
    assert len(frame) == 72 and (frame.index[1:] - frame.index[:-1] == timedelta(hours=1)).all()
    assert frame.loc[datetime(2012, 1, 1, 5), "MT_001"] == pytest.approx((1.5 + 2.25 + 3 + 4.75) / 4)
    assert frame.loc[datetime(2012, 1, 1, 6), "MT_001"] != pytest.approx(2.875)  # 06:00's reading closed hour 05:00
    expected_mt3 = sum(10 + k % 4 + 0.125 for k in range(4)) / 4  # any whole hour holds each of 10..13 once
    assert frame.loc[datetime(2012, 1, 1, 12), "MT_003"] == pytest.approx(expected_mt3)
    dead = [datetime(2012, 1, 2, 1), datetime(2012, 1, 3, 10)]
    assert frame.loc[dead].isna().all().all() and frame.drop(index=dead).notna().all().all()
    assert frame["total"].drop(index=dead).to_numpy() == pytest.approx(
        (frame["MT_001"] + frame["MT_003"]).drop(index=dead).to_numpy())


def test_electricity_profile_loads_with_the_dead_hour_interpolated(cache, zips, monkeypatch):
    """configs/electricity.yaml forecasts `total` in kWh; the spring-hour gap is filled and noted."""
    from lstmkit.config import load_config
    from lstmkit.data.series import load_series

    cfg = load_config(REPO / "configs" / "electricity.yaml")
    assert (cfg.data.target, cfg.data.features, cfg.data.units) == ("total", [], "kWh")
    with serve(zips) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        series = load_series(cfg)
    assert list(series.frame.columns) == ["total"] and len(series.frame) == 72
    assert series.frame["total"].notna().all()
    assert any("'total'" in note and "interpolate" in note for note in series.notes)


def test_archive_saved_by_hand_is_converted_offline(cache, zips, monkeypatch, capsys):
    """A download interrupted after the archive (or an archive put there by hand) resumes with the conversion only."""
    cache.mkdir()
    (cache / JENA_ZIP).write_bytes((zips / JENA_ZIP).read_bytes())
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", closed_port_url())
    assert dataset_path("jena_climate") == cache / JENA_CSV
    assert "downloading" not in capsys.readouterr().err
    assert listing(cache) == sorted([JENA_CSV, JENA_ZIP])


def damaged(data: bytes) -> bytes:
    """The zip with one byte of its stored member flipped: still a zip, but its CRC check fails."""
    at = data.index(b"Date Time") + 40
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("fault", ["html page", "cut in half", "bit flipped", "deflate damaged", "wrong member"])
def test_a_corrupt_archive_is_refused_and_nothing_is_kept(cache, tmp_path, monkeypatch, fault):
    """A download that is no complete zip holding the expected file is refused with the way out, and not cached."""
    folder = tmp_path / "bad"
    folder.mkdir()
    good = tmp_path / "stored.zip"
    method = zipfile.ZIP_DEFLATED if fault == "deflate damaged" else zipfile.ZIP_STORED
    text = JENA_HEADER + "\n" + "\n".join(jena_row(JENA_START + timedelta(minutes=10 * i), i) for i in range(50))
    with zipfile.ZipFile(good, "w", method) as z:
        z.writestr("other.csv" if fault == "wrong member" else JENA_MEMBER, text)
    data = good.read_bytes()
    inside = data.find(JENA_MEMBER.encode()) + len(JENA_MEMBER) + 20  # within the member's (compressed) bytes
    body = {"html page": lambda: b"<html>rate limited</html>", "cut in half": lambda: data[: len(data) // 2],
            "bit flipped": lambda: damaged(data),
            "deflate damaged": lambda: data[:inside] + bytes(40) + data[inside + 40:],
            "wrong member": lambda: data}[fault]()
    (folder / JENA_ZIP).write_bytes(body)
    with serve(folder) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError) as info:
            dataset_path("jena_climate")
    message = str(info.value)
    assert message.startswith(f"the file downloaded for jena_climate from {base}/{JENA_ZIP} ")
    assert {"html page": "not a readable zip archive", "cut in half": "not a readable zip archive",
            "bit flipped": f"is a damaged zip archive ({JENA_MEMBER} fails its CRC check)",
            "deflate damaged": " zip archive (", "wrong member": f"without {JENA_MEMBER} (it holds other.csv)"}[fault] in message
    assert f"it was not kept; download the file yourself to {cache / JENA_ZIP}" in message and "\n" not in message
    assert listing(cache) == []


def test_a_file_that_does_not_convert_leaves_no_csv(cache, tmp_path, monkeypatch):
    """A month-first date in the Jena file is named with its row; no half-written CSV stays behind."""
    folder = tmp_path / "odd"
    folder.mkdir()
    lines = [JENA_HEADER, jena_row(JENA_START, 0), jena_row(JENA_START, 1).replace("12.01.2009", "01.13.2009")]
    with zipfile.ZipFile(folder / JENA_ZIP, "w") as z:
        z.writestr(JENA_MEMBER, "\n".join(lines) + "\n")
    with serve(folder) as base:
        monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
        with pytest.raises(DatasetError) as info:
            dataset_path("jena_climate")
    message = str(info.value)
    assert message.startswith(f"cannot convert {cache / JENA_ZIP} for jena_climate: {JENA_MEMBER} row 3: "
                              "'01.13.2009 00:10:00' in 'Date Time' is not a day-first timestamp (%d.%m.%Y %H:%M:%S)")
    assert "delete the file to download it again" in message
    assert listing(cache) == [JENA_ZIP, f"{JENA_ZIP}.sha256"]  # the archive is intact; only the conversion failed


def test_offline_message_says_which_archive_to_save_where(cache, monkeypatch):
    """Offline, the error names the upstream zip and the cache path it belongs at, converted on first use."""
    base = closed_port_url()
    monkeypatch.setenv("LSTMKIT_DATASET_BASE_URL", base)
    with pytest.raises(DatasetError) as info:
        dataset_path("electricity")
    message = str(info.value)
    assert message.startswith(f"cannot download electricity from {base}/{ELEC_ZIP} (")
    assert "this machine may be offline" in message
    assert (f"download the file yourself to {cache / ELEC_ZIP} (the zip archive from "
            "https://archive.ics.uci.edu/static/public/321/electricityloaddiagrams20112014.zip, unchanged: lstmkit "
            "converts it on first use), or use data.source: csv with data.path") in message
    assert not cache.exists()


def test_new_datasets_credit_their_source_licence_and_conversion():
    """describe() fills every field the data chapter and the report print."""
    jena, elec = describe("jena_climate"), describe("electricity")
    assert jena["source"] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
    assert "Max Planck Institute for Biogeochemistry" in jena["licence"] and "keras.io" in jena["licence"]
    assert "Chollet" in jena["citation"] and "10 minutes" in jena["description"] and jena["frequency"] == "10min"
    assert elec["source"] == "https://archive.ics.uci.edu/static/public/321/electricityloaddiagrams20112014.zip"
    assert elec["licence"].startswith("CC BY 4.0") and "10.24432/C58C86" in elec["citation"]
    assert "Trindade" in elec["citation"] and "LSTNet" in elec["citation"] and elec["frequency"] == "h"
    for info in (jena, elec):
        assert info["sha256"] is None and not info["bundled"] and info["preparation"].startswith("converted by lstmkit")
    assert describe("etth2")["preparation"] == ""
    assert REGISTRY["jena_climate"].target == "T (degC)" and len(REGISTRY["jena_climate"].features) == 13
