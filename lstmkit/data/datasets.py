"""Named real datasets usable as `data.source`: ETTh2 ships with the package, the others are downloaded once.

Downloads (pooch) go to a per-user cache (platformdirs' cache folder, see `cache_dir`), are checked against a known
sha256 where there is one (and, for zip archives, against the archive's own CRC checksums), and appear there only when
complete (pooch writes a temporary file and renames it into place), so an interrupted or failed download leaves
nothing behind. Datasets published as an archive in
another layout (`jena_climate`, `electricity`) are converted once into the CSV layout that `load_csv` reads; the
converted file is cached beside the download, also written to a temporary file and renamed, so re-running after any
failure resumes where it stopped."""

from __future__ import annotations

import os
import re
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from lstmkit.core.atomic import atomic_path, atomic_write_text, sha256_file
from lstmkit.core.errors import DatasetError

UPSTREAM_BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"
BASE_URL_ENV = "LSTMKIT_DATASET_BASE_URL"  # mirrors and tests: the file name is appended to this URL
CACHE_DIR_ENV = "LSTMKIT_CACHE_DIR"
TIMEOUT_S = 30.0  # seconds a connection or a read may stall before the download is abandoned

ETT_FEATURES = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
ETT_LICENCE = "CC BY-ND 4.0 (Creative Commons Attribution-NoDerivatives 4.0 International)"
ETT_CITATION = ('Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting", '
                "AAAI 2021")


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One named dataset: where its file comes from, how to check it, and how to read and credit it."""

    name: str
    filename: str  # the CSV that load_csv reads (for a converted dataset: the converter's output in the cache)
    url: str  # upstream address of the downloaded file (its provenance, also for the bundled one)
    sha256: str | None  # of the downloaded file; None where no published hash is known
    bundled: bool  # shipped inside the package (lstmkit/bundled) rather than downloaded
    download_name: str | None = None  # name of the downloaded file where it differs from `filename` (an archive)
    archive_member: str | None = None  # the file inside the downloaded zip archive that `prepare` reads
    prepare: Callable[[Path, str, Path], None] | None = None  # (archive, member, output CSV): the conversion
    preparation: str = ""  # what `prepare` does, in words (credited in the report beside the licence)
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


JENA_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip"
JENA_MEMBER = "jena_climate_2009_2016.csv"
JENA_DATE_COLUMN = "Date Time"
JENA_DATE_FORMAT = "%d.%m.%Y %H:%M:%S"  # day first (01.02.2009 is February 1st): never guessed
JENA_COLUMNS = ("p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)", "VPmax (mbar)", "VPact (mbar)",
                "VPdef (mbar)", "sh (g/kg)", "H2OC (mmol/mol)", "rho (g/m**3)", "wv (m/s)", "max. wv (m/s)", "wd (deg)")
JENA_SENTINEL = -9999.0  # the station's code for a failed reading (seen in the wind speeds)

ELECTRICITY_URL = "https://archive.ics.uci.edu/static/public/321/electricityloaddiagrams20112014.zip"
ELECTRICITY_MEMBER = "LD2011_2014.txt"
ELECTRICITY_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
ELECTRICITY_SPAN = ("2012-01-01 00:00:00", "2014-12-31 23:00:00")  # the span of the forecasting literature
ELECTRICITY_TOTAL = "total"
QUARTERS = 4  # 15-minute readings per hour
_ROWS_PER_CHUNK = 96 * 28  # raw electricity rows read at a time: four weeks of quarter-hours


def _prepare_jena(archive: Path, member: str, out: Path) -> None:
    """Jena weather CSV from the zip -> `date` (ISO, parsed day first) + the 14 columns, -9999 sentinels left empty."""
    import pandas as pd

    with zipfile.ZipFile(archive) as z, z.open(member) as f:
        raw = pd.read_csv(f, dtype={JENA_DATE_COLUMN: str})
    expected = [JENA_DATE_COLUMN, *JENA_COLUMNS]
    if list(raw.columns) != expected:
        missing = [c for c in expected if c not in raw.columns]
        extra = [c for c in raw.columns if c not in expected]
        raise DatasetError(f"{member} does not have the columns of the published file (missing: "
                           f"{', '.join(missing) or 'none'}; unexpected: {', '.join(map(str, extra)) or 'none'})")
    stamps = pd.to_datetime(raw[JENA_DATE_COLUMN].str.strip(), format=JENA_DATE_FORMAT, errors="coerce")
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise DatasetError(f"{member} row {row + 2}: {raw[JENA_DATE_COLUMN].iloc[row]!r} in '{JENA_DATE_COLUMN}' is not "
                           f"a day-first timestamp ({JENA_DATE_FORMAT})")
    values = _numeric_frame(raw[list(JENA_COLUMNS)], member)
    sentinel = values == JENA_SENTINEL
    frame = values.mask(sentinel)
    frame.index = pd.DatetimeIndex(stamps, name="date")
    frame.to_csv(out, date_format="%Y-%m-%d %H:%M:%S")
    found = {c: int(n) for c, n in sentinel.sum().items() if n}
    if found:
        print("note: jena_climate: " + ", ".join(f"{n} value(s) of {JENA_SENTINEL:g} in '{c}'" for c, n in found.items())
              + " written as missing", file=sys.stderr, flush=True)


def _numeric_frame(frame, member: str, row_offset: int = 0):
    """The frame unchanged when every column is numeric, else a DatasetError naming the first non-numeric cell."""
    import pandas as pd

    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            bad = pd.to_numeric(frame[col], errors="coerce").isna() & frame[col].notna()
            row = int(bad.to_numpy().argmax())
            raise DatasetError(f"{member} row {row_offset + row + 2}: column '{col}' holds {frame[col].iloc[row]!r}, "
                               "not a number")
    return frame.astype(float)


def _prepare_electricity(archive: Path, member: str, out: Path) -> None:
    """UCI LD2011_2014.txt (15-minute kW, `;`-separated, decimal comma) -> hourly kWh, 2012-2014, plus `total`.

    Each hour is the mean of its four 15-minute kW readings (= their sum divided by 4 = the kWh used in that hour),
    labelled by the hour's start: the readings stamped 00:15, 00:30, 00:45 and 01:00 (each closing its quarter
    hour) make the hour 00:00. Clients with no consumption at all before 2012 (connected later) are dropped. An hour
    holding a reading at which every client reads zero (the source's spring daylight-saving hour) is left empty as
    missing in every column, whichever way the source stamps that hour.
    """
    import pandas as pd

    sums, counts, dead, offset = [], [], [], 0
    with zipfile.ZipFile(archive) as z, z.open(member) as f:
        for chunk in pd.read_csv(f, sep=";", decimal=",", index_col=0, chunksize=_ROWS_PER_CHUNK):
            stamps = pd.to_datetime(chunk.index.astype(str).str.strip(), format=ELECTRICITY_DATE_FORMAT,
                                    errors="coerce")
            if stamps.isna().any():
                row = int(stamps.isna().argmax())
                raise DatasetError(f"{member} row {offset + row + 2}: {chunk.index[row]!r} is not a timestamp "
                                   f"({ELECTRICITY_DATE_FORMAT})")
            values = _numeric_frame(chunk, member, offset)
            if values.isna().any().any():
                row = int(values.isna().any(axis=1).to_numpy().argmax())
                raise DatasetError(f"{member} row {offset + row + 2}: missing value in column "
                                   f"'{values.columns[values.iloc[row].isna().to_numpy()][0]}'")
            hours = (stamps - pd.Timedelta(minutes=15)).floor("h")
            values.index = hours
            dead.extend(hours[(values == 0).all(axis=1).to_numpy()])
            sums.append(values.groupby(level=0).sum())
            counts.append(pd.Series(1, index=hours).groupby(level=0).sum())
            offset += len(chunk)
    if not sums:
        raise DatasetError(f"{member} has no data rows")
    total = pd.concat(sums).groupby(level=0).sum()
    count = pd.concat(counts).groupby(level=0).sum()
    if (count != QUARTERS).any():
        hour = count.index[(count != QUARTERS).to_numpy().argmax()]
        raise DatasetError(f"{member}: the hour starting {hour} holds {int(count[hour])} quarter-hour readings, "
                           f"expected {QUARTERS}")
    hourly = total / QUARTERS
    start, end = (pd.Timestamp(t) for t in ELECTRICITY_SPAN)
    grid = pd.date_range(hourly.index[0], hourly.index[-1], freq="h")
    if len(grid) != len(hourly):
        hour = grid.difference(hourly.index)[0]
        raise DatasetError(f"{member}: no readings for the hour starting {hour}")
    before = hourly[hourly.index < start]
    if before.empty or hourly.index[-1] < end:
        raise DatasetError(f"{member} covers {hourly.index[0]} to {hourly.index[-1]}: it must start before {start} "
                           f"(to tell which clients were connected) and reach {end}")
    kept = before.columns[(before != 0).any()]
    if kept.empty:
        raise DatasetError(f"{member}: no client has any consumption before {start}")
    span = hourly.loc[start:end, kept]
    dead_hours = span.index.isin(pd.DatetimeIndex(dead))
    span = span.mask(pd.Series(dead_hours, index=span.index), axis=0)
    span = pd.concat([span, span.sum(axis=1, min_count=1).rename(ELECTRICITY_TOTAL)], axis=1)
    span.index.name = "date"
    span.to_csv(out, date_format="%Y-%m-%d %H:%M:%S", float_format="%.8g")
    print(f"note: electricity: kept {len(kept)} of {hourly.shape[1]} clients (those with consumption before {start:%Y}); "
          f"{len(span):,} hourly rows from {start} to {end}; {int(dead_hours.sum())} hour(s) holding a reading with no "
          "consumption in any client written as missing", file=sys.stderr, flush=True)


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
    Dataset(
        name="jena_climate", filename="jena_climate_2009_2016.lstmkit-v1.csv", url=JENA_URL, sha256=None,
        bundled=False, download_name="jena_climate_2009_2016.csv.zip", archive_member=JENA_MEMBER,
        prepare=_prepare_jena, date_column="date", target="T (degC)",
        features=tuple(c for c in JENA_COLUMNS if c != "T (degC)"), frequency="10min",
        description="Weather in Jena, Germany, recorded by the Max Planck Institute for Biogeochemistry every 10 "
                    "minutes from 2009-01-01 to 2016-12-31 (420,551 rows): air pressure, temperatures, humidity, "
                    "vapour pressures, specific humidity, water-vapour concentration, air density, wind speed and "
                    "direction (14 variables, named as published, e.g. `T (degC)`); the series of the keras.io "
                    "weather forecasting example (downloaded on first use). The published file has duplicate "
                    "timestamps, gaps and -9999 readings in the wind speeds: configs/jena_climate.yaml repairs them",
        licence="no licence name is given: weather data as published by the Max Planck Institute for "
                "Biogeochemistry (https://www.bgc-jena.mpg.de/wetter/) for free use with attribution; this "
                "2009-2016 extract is the one the keras.io example uses",
        citation="Max Planck Institute for Biogeochemistry, Jena, weather station data "
                 "(https://www.bgc-jena.mpg.de/wetter/), extract prepared by F. Chollet for \"Deep Learning with "
                 "Python\" (Manning) and used by the keras.io example \"Timeseries forecasting for weather "
                 "prediction\"",
        preparation="converted by lstmkit: timestamps parsed day first (dd.mm.yyyy HH:MM:SS) and written as ISO "
                    "dates in a `date` column, -9999 readings written as missing; rows, duplicates and gaps kept as "
                    "published"),
    Dataset(
        name="electricity", filename="electricity_hourly_2012_2014.lstmkit-v1.csv", url=ELECTRICITY_URL,
        sha256=None, bundled=False, download_name="electricityloaddiagrams20112014.zip",
        archive_member=ELECTRICITY_MEMBER, prepare=_prepare_electricity, date_column="date",
        target=ELECTRICITY_TOTAL, features=(), frequency="h",
        description="Electricity used by Portuguese clients of one utility (UCI ElectricityLoadDiagrams20112014), "
                    "aggregated to hourly kWh as in the forecasting literature: 26,304 rows from 2012-01-01 00:00 to "
                    "2014-12-31 23:00, one column per client connected before 2012 (`MT_001` ...) and `total`, "
                    "their sum (downloaded on first use)",
        licence="CC BY 4.0 (Creative Commons Attribution 4.0 International)",
        citation="Trindade, A. (2015). ElectricityLoadDiagrams20112014 [Dataset]. UCI Machine Learning Repository. "
                 "https://doi.org/10.24432/C58C86; hourly 2012-2014 version as in Lai et al., \"Modeling Long- and "
                 "Short-Term Temporal Patterns with Deep Neural Networks\" (LSTNet), SIGIR 2018",
        preparation="converted by lstmkit: each hour is the mean of its four 15-minute kW readings (= the kWh used "
                    "in the hour), labelled by the hour's start; kept 2012-2014 and the clients with consumption "
                    "before 2012; added `total`, the sum of the kept clients; an hour holding a reading at which every "
                    "client reads zero (the spring daylight-saving hour) written as missing in every column"),
]}


def get_dataset(name: str) -> Dataset:
    """The registry entry for a name (case-insensitive), or a DatasetError listing the known names."""
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise DatasetError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def cache_dir() -> Path:
    """Download cache: $LSTMKIT_CACHE_DIR, else platformdirs' user cache folder + lstmkit/datasets (on Linux
    $XDG_CACHE_HOME/lstmkit/datasets, else ~/.cache/lstmkit/datasets)."""
    own = os.environ.get(CACHE_DIR_ENV)
    if own:
        return Path(own).expanduser()
    return Path(platformdirs.user_cache_dir("lstmkit")) / "datasets"


def raw_name(dataset: Dataset) -> str:
    """Name of the file as downloaded (and cached): the archive for a converted dataset, else the CSV itself."""
    return dataset.download_name or dataset.filename


def download_url(dataset: Dataset) -> str:
    """Where the file is fetched from: the mirror in $LSTMKIT_DATASET_BASE_URL plus the file name, else upstream."""
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{raw_name(dataset)}" if base else dataset.url


def bundled_file(filename: str) -> Path:
    """A file shipped inside the installed package's bundled/ folder."""
    path = Path(str(resources.files("lstmkit") / "bundled" / filename))
    if not path.is_file():
        raise DatasetError(f"bundled file {filename} is missing from the installed lstmkit package (looked for {path}): "
                           "reinstall lstmkit")
    return path


def dataset_path(name: str) -> Path:
    """Local path of a dataset's CSV file: the bundled copy, or the cached one (downloaded and converted on first use)."""
    dataset = get_dataset(name)
    if dataset.bundled:
        return bundled_file(dataset.filename)
    path = cache_dir() / dataset.filename
    if dataset.prepare is None:
        if path.is_file():
            _check_cached(dataset, path)
            return path
        return _download(dataset, path)
    if path.is_file():  # converted earlier: written atomically, so present means complete
        return path
    raw = cache_dir() / raw_name(dataset)
    if raw.is_file():
        _check_cached(dataset, raw)
        _check_archive(dataset, raw, f"cached file {raw} for {dataset.name}",
                       f"delete it to download it again, or save the archive from {dataset.url} there")
    else:
        _download(dataset, raw)
    return _prepare(dataset, raw, path)


def describe(name: str) -> dict:
    """What a report needs to credit a dataset: description, source, licence, citation, and any conversion made."""
    d = get_dataset(name)
    return {"name": d.name, "description": d.description, "file": d.filename, "source": d.url,
            "bundled": d.bundled, "frequency": d.frequency, "sha256": d.sha256,
            "licence": d.licence, "citation": d.citation, "preparation": d.preparation}


def _check_cached(dataset: Dataset, path: Path) -> None:
    """Fail clearly when a cached file (perhaps saved by hand) differs from the known sha256."""
    if dataset.sha256 is None:
        return
    actual = sha256_file(path)
    if actual != dataset.sha256:
        what = "archive" if dataset.archive_member else "raw CSV"
        raise DatasetError(f"cached file {path} for {dataset.name} has sha256 {actual}, expected {dataset.sha256}: "
                           f"delete it to download it again, or save the {what} from {dataset.url} there")


def _check_archive(dataset: Dataset, path: Path, what: str, advice: str) -> None:
    """For a zipped dataset: the file is a zip archive holding the expected member, with every CRC checksum right."""
    if dataset.archive_member is None:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if dataset.archive_member not in names:
                raise DatasetError(f"{what} is a zip archive without {dataset.archive_member} (it holds "
                                   f"{', '.join(names[:5]) or 'nothing'}): {advice}")
            bad = archive.testzip()  # reads every member: catches a truncated or damaged archive
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, zlib.error) as e:  # zlib: bad deflate data
        raise DatasetError(f"{what} is not a readable zip archive ({_reason(e)}): {advice}") from None
    if bad is not None:
        raise DatasetError(f"{what} is a damaged zip archive ({bad} fails its CRC check): {advice}")


def _fallback(path: Path, dataset: Dataset | None = None) -> str:
    """The advice every download failure ends with (for an archive: where it comes from, and that it is converted)."""
    origin = ""
    if dataset is not None and dataset.prepare is not None:
        origin = f" (the zip archive from {dataset.url}, unchanged: lstmkit converts it on first use)"
    return f"download the file yourself to {path}{origin}, or use data.source: csv with data.path"


def _reason(error: BaseException) -> str:
    """Short cause of a network error (URLError wraps the socket error in `reason`)."""
    cause = getattr(error, "reason", None) or error
    return str(cause) or type(cause).__name__


def _network_reason(error: BaseException) -> str:
    """The cause of a failed request in a few words: refused, timed out, or cut short after n of m bytes."""
    text = str(error)
    cut = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text)
    if cut:
        got, more = int(cut.group(1)), int(cut.group(2))
        return f"connection closed after {got} of {got + more} bytes"
    if "timed out" in text.lower() or "timeout" in type(error).__name__.lower():
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    reason = re.search(r"Caused by \w+\([^:]*: (.*?)\)+$", text)
    return reason.group(1) if reason else (text.splitlines() or [type(error).__name__])[0]


def _offline(failed: str, reason: str, path: Path, dataset: Dataset | None = None) -> DatasetError:
    """The error for a download cut off by the network (refused, unreachable, stalled or truncated)."""
    return DatasetError(f"{failed} ({reason}): this machine may be offline; " + _fallback(path, dataset))


def _download(dataset: Dataset, path: Path) -> Path:
    """Fetch a dataset into the cache with pooch (a temporary file renamed into place once complete and, where the
    sha256 is known, verified); an archive is then checked whole, else removed. DatasetError naming the cause."""
    import pooch  # with requests: loaded only when something is downloaded
    import requests

    pooch.get_logger().setLevel("WARNING")  # lstmkit announces the download itself, on one line
    url = download_url(dataset)
    failed = f"cannot download {dataset.name} from {url}"
    print(f"downloading {dataset.name} from {url} ...", file=sys.stderr, flush=True)
    created = not path.parent.exists()
    known = f"sha256:{dataset.sha256}" if dataset.sha256 else None
    try:
        pooch.retrieve(url, known, fname=path.name, path=path.parent, progressbar=False,
                       downloader=pooch.HTTPDownloader(timeout=TIMEOUT_S, progressbar=False))
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        reason = e.response.reason if e.response is not None else str(e)
        mirror = f" (check {BASE_URL_ENV}, set to {os.environ[BASE_URL_ENV]})" if os.environ.get(BASE_URL_ENV) else ""
        raise DatasetError(f"{failed} (HTTP {status} {reason}): the file is not available there{mirror}; "
                           + _fallback(path, dataset)) from None
    except requests.RequestException as e:  # refused, unreachable, stalled, or cut short (IncompleteRead)
        raise _offline(failed, _network_reason(e), path, dataset) from None
    except ValueError as e:  # pooch: the sha256 of the download differs from the known one (the file is removed)
        found = re.search(r"got ([0-9a-f]{64})", str(e))
        actual = found.group(1) if found else "another hash"
        raise DatasetError(f"sha256 mismatch for {dataset.name} downloaded from {url}: expected {dataset.sha256}, "
                           f"got {actual}; the file was not kept (the source may hold another version): "
                           + _fallback(path, dataset)) from None
    except OSError as e:  # neither the network nor the cache folder as such, e.g. a full disk while writing
        raise DatasetError(f"{failed} to {path} ({_reason(e)}): " + _fallback(path, dataset)) from None
    finally:
        if created and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()  # a failed first download leaves no empty cache folder
    try:
        _check_archive(dataset, path, f"the file downloaded for {dataset.name} from {url}",
                       "it was not kept; " + _fallback(path, dataset))
    except DatasetError:
        path.unlink(missing_ok=True)
        if created and not any(path.parent.iterdir()):
            path.parent.rmdir()
        raise
    if dataset.sha256 is None:
        _record_hash(dataset, path, sha256_file(path))
    return path


def _record_hash(dataset: Dataset, path: Path, actual: str) -> None:
    """Write the computed hash as <file>.sha256 (sha256sum format) and say so, for files without a published one."""
    sidecar = path.with_name(f"{path.name}.sha256")
    atomic_write_text(sidecar, f"{actual}  {path.name}\n")
    print(f"note: no published sha256 for {dataset.name}; the downloaded file's sha256 is {actual} (written to "
          f"{sidecar}); compare it with a trusted copy", file=sys.stderr, flush=True)


def _prepare(dataset: Dataset, raw: Path, path: Path) -> Path:
    """Convert a downloaded archive into the dataset's CSV: temporary file, then an atomic rename (resumable)."""
    assert dataset.prepare is not None and dataset.archive_member is not None
    print(f"converting {raw.name} into {path.name} for {dataset.name} ...", file=sys.stderr, flush=True)
    failed = f"cannot convert {raw} for {dataset.name}"
    advice = f"delete the file to download it again, or save the archive from {dataset.url} there"
    try:
        with atomic_path(path, durable=False) as tmp:
            dataset.prepare(raw, dataset.archive_member, tmp)
    except DatasetError as e:
        raise DatasetError(f"{failed}: {e}; {advice}") from None
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:  # pandas' ParserError is a ValueError
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DatasetError(f"{failed} ({reason}): {advice}") from None
    return path
