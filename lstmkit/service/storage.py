"""The service's database: observations, issued forecasts, jobs and model versions (SQLAlchemy 2 Core).

Two back-ends behind one URL:

- SQLite, `sqlite:///path/service.db` (the embedded default): one file in WAL journal mode, so that readers never
  wait for the writer; a 30 s busy timeout; foreign keys on; every write transaction starts with `BEGIN IMMEDIATE`,
  which takes the database's write lock before the first read, so the read-check-insert of an append is serialised
  with every other writer (threads of this process and other processes alike). `synchronous=FULL`: in WAL mode a
  commit then returns only after the WAL is fsynced, so an acknowledged (committed) observation survives a `kill -9`
  of the process (NORMAL would too, the WAL being written before commit returns) and also a power loss or kernel
  crash (which NORMAL would not guarantee); the price is one fsync per write transaction (about 4 ms on this
  project's CI disk, against 0.02 ms for NORMAL). `sqlite:///path.db?synchronous=NORMAL` trades the power-loss
  guarantee for speed (still safe against `kill -9`), e.g. for a replay whose database is thrown away. One engine (a pool of connections) is shared by the threads of a process.
- PostgreSQL, `postgresql+psycopg://user@host:port/db`: an append inserts the series row if absent
  (`ON CONFLICT DO NOTHING`) and locks it with `SELECT ... FOR UPDATE`, which serialises appends to one series while
  appends to other series run in parallel; commits are durable (the server's `synchronous_commit=on` default).

Timestamps are stored as int64 nanoseconds since 1970-01-01 of the naive timestamp (time-zone-aware ones are
converted to UTC and made naive first), so they round-trip exactly; values are stored as a JSON list of float64 in
the series' column order (float32 inputs are widened exactly), so they round-trip exactly too.

Append rules (`Storage.append`), all checked in one transaction, all-or-nothing:
- the body's timestamps are strictly increasing and consecutive on the `freq` grid (each one step after the previous);
- its columns are the series' columns (fixed by the series' first append), every value finite;
- a timestamp already stored is a duplicate (idempotent, nothing changes) when every value equals the stored one at
  float32 precision (the precision the models compute in), otherwise a conflict (409);
- a timestamp before the last stored one that is not stored is out of order (422);
- the first new timestamp must be exactly one step after the last stored one (a gap is a 422 naming the expected
  timestamp); a new series may start anywhere (on the offset, for anchored offsets such as `MS`)."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.tseries.frequencies import to_offset
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from lstmkit.core.errors import StorageError
from lstmkit.core.jsonable import jsonable

JOB_STATUSES = ("queued", "running", "succeeded", "failed")
MODEL_STATUSES = ("champion", "retired", "rejected", "candidate")
SQLITE_BUSY_TIMEOUT_S = 30.0
SQLITE_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")

metadata = sa.MetaData()

series_table = sa.Table(
    "series", metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("columns", sa.JSON, nullable=True),           # list of column names, fixed by the first append
    sa.Column("freq", sa.String(40), nullable=True),        # pandas offset alias of the first append
    sa.Column("last_ts", sa.BigInteger, nullable=True),     # ns of the last stored observation
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("counter", sa.BigInteger, nullable=False, server_default="0"),  # new observations since last retrain
)

observations_table = sa.Table(
    "observations", metadata,
    sa.Column("series_id", sa.String(200), sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("values", sa.JSON, nullable=False),           # list of float64 in the series' column order
)

forecasts_table = sa.Table(
    "forecasts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.String(200), nullable=False, index=True),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("origin", sa.BigInteger, nullable=False),     # ns of the last observation the forecast was made from
    sa.Column("issued_at", sa.BigInteger, nullable=False),  # ns since the epoch, UTC wall clock
    sa.Column("horizon", sa.Integer, nullable=False),
)

forecast_steps_table = sa.Table(
    "forecast_steps", metadata,
    sa.Column("forecast_id", sa.Integer, sa.ForeignKey("forecasts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),        # 1 .. horizon
    sa.Column("series_id", sa.String(200), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),         # ns of the forecast timestamp (joins observations.ts)
    sa.Column("mean", sa.Float(precision=53), nullable=False),
    sa.Column("bounds", sa.JSON, nullable=False),           # {"lower_80": v, "upper_80": v, ...}
    sa.Index("ix_forecast_steps_series_ts", "series_id", "ts"),
)

jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("created", sa.String(40), nullable=False),    # ISO 8601, UTC
    sa.Column("started", sa.String(40), nullable=True),
    sa.Column("finished", sa.String(40), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

models_table = sa.Table(
    "models", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # registration order
    sa.Column("version", sa.String(100), nullable=False, unique=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("parent", sa.String(100), nullable=True),
    sa.Column("created", sa.String(40), nullable=False),    # ISO 8601, UTC
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
)


@dataclass
class AppendResult:
    """What an append did: rows `stored` (new), `duplicates` (already stored, same values), the series' `last`
    stored timestamp and its `total` number of observations after the append."""

    stored: int
    duplicates: int
    last: pd.Timestamp | None
    total: int


def _now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat()


def _to_ns(index: pd.DatetimeIndex | pd.Series | list) -> np.ndarray:
    """Timestamps -> int64 ns since the epoch of the naive (or UTC-converted) timestamps; shape (n,)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").asi8.copy()


def _ts(ns: int) -> pd.Timestamp:
    """Int64 ns -> naive pandas Timestamp."""
    return pd.Timestamp(int(ns), unit="ns")


def _index(ns: np.ndarray | list) -> pd.DatetimeIndex:
    """Int64 ns -> naive DatetimeIndex (datetime64[ns]) named `timestamp`."""
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]"), name="timestamp")


def _offset(freq: str):
    """The pandas offset of `freq` (StorageError 422 when it is not an offset alias)."""
    try:
        return to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise StorageError(f"time step {freq!r} is not a pandas offset alias ({exc})") from None


def _next_ns(ns: np.ndarray, offset) -> np.ndarray:
    """The timestamp one `offset` step after each of `ns` (int64 ns); shape (n,)."""
    if isinstance(offset, pd.offsets.Tick):
        return ns + int(pd.Timedelta(offset).value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        return _to_ns(_index(ns) + offset)


def _bound_key(kind: str, key: str) -> str:
    """Normalise an interval key ("80" or "lower_80") to "lower_80" / "upper_80"."""
    key = str(key)
    for prefix in ("lower_", "upper_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return f"{kind}_{key}"


class Storage:
    """Observations, issued forecasts, jobs and model versions in SQLite (WAL) or PostgreSQL; see the module doc."""

    def __init__(self, url: str):
        """Connect to `url` (a SQLite file URL or a PostgreSQL URL) and create the tables that are missing."""
        self.url = str(url)
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise ValueError(f"database URL {self.url!r} is not a SQLAlchemy URL ({exc})") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or database.startswith("file::memory:"):
                raise ValueError(f"database URL {self.url!r}: SQLite needs a file (sqlite:///path/service.db), "
                                 "an in-memory database is not shared between connections")
            synchronous = str(parsed.query.get("synchronous", "FULL")).upper()
            if synchronous not in SQLITE_SYNCHRONOUS:
                raise ValueError(f"database URL {self.url!r}: synchronous={synchronous} is not one of "
                                 f"{', '.join(SQLITE_SYNCHRONOUS)}")
            parsed = parsed.difference_update_query(["synchronous"])
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConnectionError(f"cannot open the database {self.url}: cannot create its folder ({exc})") from None
            self.dialect = "sqlite"
            self.engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S,
                                                                 "check_same_thread": False},
                                           pool_size=8, max_overflow=24)
            self._install_sqlite_events(self.engine, synchronous)
            self._writer = self.engine.execution_options(lstmkit_begin="BEGIN IMMEDIATE")
        elif backend == "postgresql":
            self.dialect = "postgresql"
            self.engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=24)
            self._writer = self.engine
        else:
            raise ValueError(f"database URL {self.url!r}: only sqlite:///FILE and postgresql+psycopg://... are supported")
        self._insert = sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert
        self._create_tables()

    @staticmethod
    def _install_sqlite_events(engine: sa.Engine, synchronous: str) -> None:
        """Per connection: WAL, synchronous (FULL by default), busy timeout, foreign keys; we emit BEGIN ourselves (pysqlite's
        own transaction handling would defer it)."""

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            """Set the pragmas and hand transaction control to SQLAlchemy's begin event."""
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            """BEGIN (readers) or BEGIN IMMEDIATE (writers: the write lock before the first read)."""
            conn.exec_driver_sql(conn.get_execution_options().get("lstmkit_begin", "BEGIN"))

    def _create_tables(self) -> None:
        """Create the missing tables, serialised with other processes doing the same (ConnectionError, naming the
        database, when it cannot be opened)."""
        try:
            with self._writer.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7531902468)"))
                metadata.create_all(conn)
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            where = sa.engine.make_url(self.url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise ConnectionError(f"cannot open the database {where}: {reason}") from None

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Storage:
        """Use as a context manager that closes the pool on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the pooled connections."""
        self.close()

    def __repr__(self) -> str:
        """Storage(<url without password>)."""
        return f"Storage({sa.engine.make_url(self.url).render_as_string(hide_password=True)!r})"

    # --- observations -------------------------------------------------------------------------------------------

    def append(self, series_id: str, index: pd.DatetimeIndex, values: dict[str, np.ndarray], freq: str) -> AppendResult:
        """Append observations (`values[column]` of shape (n,), one per timestamp of `index`) to a series, in one
        transaction, all-or-nothing; see the module doc for the rules. StorageError 409/422 on refusal."""
        series_id = str(series_id)
        offset = _offset(freq)
        try:
            ns = _to_ns(index)
        except (ValueError, TypeError) as exc:
            raise StorageError(f"series {series_id!r}: timestamps are not datetimes ({exc})") from None
        n = len(ns)
        if n == 0:
            raise StorageError(f"series {series_id!r}: no observations to append (empty body)")
        if pd.isna(pd.DatetimeIndex(index)).any():
            raise StorageError(f"series {series_id!r}: a timestamp is missing (NaT)")
        if not values:
            raise StorageError(f"series {series_id!r}: no columns in the body")
        columns = [str(c) for c in values]
        matrix = np.empty((n, len(columns)), dtype=np.float64)
        for j, (name, column) in enumerate(values.items()):
            try:
                arr = np.asarray(column, dtype=np.float64).reshape(-1)
            except (ValueError, TypeError):
                raise StorageError(f"series {series_id!r}: column {name!r} holds non-numeric values") from None
            if len(arr) != n:
                raise StorageError(f"series {series_id!r}: column {name!r} has {len(arr)} values for {n} timestamps")
            bad = np.flatnonzero(~np.isfinite(arr))
            if len(bad):
                raise StorageError(f"series {series_id!r}: column {name!r} at {_ts(ns[bad[0]])} is not a finite "
                                   f"number ({arr[bad[0]]})")
            matrix[:, j] = arr
        if n > 1:
            back = np.flatnonzero(ns[1:] <= ns[:-1])
            if len(back):
                i = int(back[0])
                raise StorageError(f"series {series_id!r}: timestamps are not strictly increasing: {_ts(ns[i + 1])} "
                                   f"follows {_ts(ns[i])}")
            expected = _next_ns(ns[:-1], offset)
            wrong = np.flatnonzero(ns[1:] != expected)
            if len(wrong):
                i = int(wrong[0])
                raise StorageError(f"series {series_id!r}: timestamp {_ts(ns[i + 1])} is off the {freq!r} grid or after a "
                                   f"gap: expected {_ts(expected[i])} after {_ts(ns[i])}")
        with self._writer.begin() as conn:
            row = self._lock_series(conn, series_id)
            stored_columns = row.columns
            if stored_columns is not None:
                unknown = [c for c in columns if c not in stored_columns]
                missing = [c for c in stored_columns if c not in columns]
                if unknown or missing:
                    parts = ([f"unknown column(s) {', '.join(map(repr, unknown))}"] if unknown else []) + \
                            ([f"missing column(s) {', '.join(map(repr, missing))}"] if missing else [])
                    raise StorageError(f"series {series_id!r}: {'; '.join(parts)} (the series has "
                                       f"{', '.join(stored_columns)})")
                matrix = matrix[:, [columns.index(c) for c in stored_columns]]
                columns = list(stored_columns)
                if row.freq is not None and to_offset(row.freq) != offset:
                    raise StorageError(f"series {series_id!r}: time step {freq!r} differs from the series' {row.freq!r}")
            last = row.last_ts
            old = int(np.searchsorted(ns, last, side="right")) if last is not None else 0
            if old:
                self._check_duplicates(conn, series_id, ns[:old], matrix[:old], columns)
            new_ns, new_values = ns[old:], matrix[old:]
            if len(new_ns):
                if last is None:
                    first = _ts(new_ns[0])
                    if not isinstance(offset, pd.offsets.Tick) and not offset.is_on_offset(first):
                        raise StorageError(f"series {series_id!r}: timestamp {first} is off the {freq!r} grid")
                else:
                    expected_first = int(_next_ns(np.array([last], dtype="int64"), offset)[0])
                    if int(new_ns[0]) != expected_first:
                        raise StorageError(f"series {series_id!r}: timestamp {_ts(new_ns[0])} leaves a gap or is off "
                                           f"the {freq!r} grid: the next one expected is {_ts(expected_first)} "
                                           f"(the last stored is {_ts(last)})")
                conn.execute(observations_table.insert(), [
                    {"series_id": series_id, "ts": int(t), "values": [float(v) for v in vals]}
                    for t, vals in zip(new_ns, new_values)])
                last = int(new_ns[-1])
            total = int(row._mapping["count"]) + len(new_ns)
            conn.execute(series_table.update().where(series_table.c.id == series_id).values(
                columns=columns, freq=row.freq or freq, last_ts=last, count=total,
                counter=series_table.c.counter + len(new_ns)))
        return AppendResult(stored=len(new_ns), duplicates=old, last=None if last is None else _ts(last), total=total)

    def _lock_series(self, conn: sa.Connection, series_id: str) -> sa.Row:
        """Insert the series row if absent and lock it for this transaction; returns it."""
        conn.execute(self._insert(series_table).values(id=series_id, count=0, counter=0)
                     .on_conflict_do_nothing(index_elements=["id"]))
        query = sa.select(series_table).where(series_table.c.id == series_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).one()

    def _check_duplicates(self, conn: sa.Connection, series_id: str, ns: np.ndarray, matrix: np.ndarray,
                          columns: list[str]) -> None:
        """Every timestamp of `ns` (before the last stored) must be stored with the same values: 422 / 409."""
        rows = conn.execute(sa.select(observations_table.c.ts, observations_table.c["values"]).where(
            observations_table.c.series_id == series_id,
            observations_table.c.ts >= int(ns[0]), observations_table.c.ts <= int(ns[-1]))).all()
        stored = {int(r.ts): r[1] for r in rows}
        for t, vals in zip(ns, matrix):
            have = stored.get(int(t))
            if have is None:
                raise StorageError(f"series {series_id!r}: timestamp {_ts(t)} is out of order: it is before the last "
                                   "stored one and not stored")
            same = np.asarray(have, dtype=np.float32) == vals.astype(np.float32)
            if not same.all():
                j = int(np.flatnonzero(~same)[0])
                raise StorageError(f"series {series_id!r}: timestamp {_ts(t)} is already stored with {columns[j]}="
                                   f"{have[j]!r}, not {float(vals[j])!r}", status=409)

    def history(self, series_id: str, last: int | None = None) -> pd.DataFrame:
        """The stored observations of a series (the `last` ones when given): index timestamps (naive, ns), one float64
        column per series column; empty when the series has none."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(series_table.c.columns).where(series_table.c.id == str(series_id))).first()
            columns = list(row.columns) if row is not None and row.columns is not None else []
            query = sa.select(observations_table.c.ts, observations_table.c["values"]).where(
                observations_table.c.series_id == str(series_id))
            if last is not None:
                query = query.order_by(observations_table.c.ts.desc()).limit(max(int(last), 0))
            else:
                query = query.order_by(observations_table.c.ts)
            rows = conn.execute(query).all()
        if last is not None:
            rows.reverse()
        values = np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), len(columns))
        return pd.DataFrame(values, index=_index([r.ts for r in rows]), columns=columns)

    def count(self, series_id: str) -> int:
        """Number of stored observations of a series (0 when unknown)."""
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(series_table.c.count).where(series_table.c.id == str(series_id))).scalar()
        return int(value or 0)

    def last(self, series_id: str) -> pd.Timestamp | None:
        """The last stored timestamp of a series (None when it has none)."""
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(series_table.c.last_ts).where(series_table.c.id == str(series_id))).scalar()
        return None if value is None else _ts(value)

    def series(self) -> list[str]:
        """Ids of the series with at least one observation, sorted."""
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(series_table.c.id).where(series_table.c.count > 0)
                                .order_by(series_table.c.id)).all()
        return [r.id for r in rows]

    def counter(self, series_id: str) -> int:
        """New observations of a series since its counter was last reset (the retrain-every-N trigger)."""
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(series_table.c.counter).where(series_table.c.id == str(series_id))).scalar()
        return int(value or 0)

    def reset_counter(self, series_id: str) -> None:
        """Set a series' new-observation counter to 0."""
        with self._writer.begin() as conn:
            conn.execute(series_table.update().where(series_table.c.id == str(series_id)).values(counter=0))

    # --- forecasts ----------------------------------------------------------------------------------------------

    def add_forecast(self, series_id: str, model_version: str, origin: pd.Timestamp, index: pd.DatetimeIndex,
                     mean: np.ndarray, lower: dict[str, np.ndarray], upper: dict[str, np.ndarray]) -> int:
        """Store an issued forecast: `mean` (h,) and interval bounds `lower[level]`/`upper[level]` (h,) (keys "80"
        or "lower_80") for the timestamps `index` (h,), made from the observations up to `origin`; returns its id."""
        ns = _to_ns(index)
        h = len(ns)
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        bounds = {_bound_key("lower", k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in lower.items()}
        bounds |= {_bound_key("upper", k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in upper.items()}
        for name, arr in [("mean", mean), *bounds.items()]:
            if len(arr) != h:
                raise StorageError(f"series {series_id!r}: forecast {name} has {len(arr)} values for {h} timestamps")
            if not np.isfinite(arr).all():
                raise StorageError(f"series {series_id!r}: forecast {name} holds a non-finite value")
        origin_ns = int(_to_ns([origin])[0])
        with self._writer.begin() as conn:
            forecast_id = conn.execute(forecasts_table.insert().values(
                series_id=str(series_id), model_version=str(model_version), origin=origin_ns,
                issued_at=time.time_ns(), horizon=h)).inserted_primary_key[0]
            if h:
                conn.execute(forecast_steps_table.insert(), [
                    {"forecast_id": forecast_id, "step": i + 1, "series_id": str(series_id), "ts": int(ns[i]),
                     "mean": float(mean[i]), "bounds": {k: float(v[i]) for k, v in bounds.items()}}
                    for i in range(h)])
        return int(forecast_id)

    def scored(self, series_id: str, target: str, last: int | None = None, step: int | None = None) -> pd.DataFrame:
        """Issued forecasts whose observation has arrived, by timestamp then origin (the `last` ones; only horizon `step` when
        given): columns origin, timestamp, step, model_version, mean, lower_*, upper_*, actual (the `target`)."""
        series_id = str(series_id)
        fs, f, o = forecast_steps_table, forecasts_table, observations_table
        query = (sa.select(f.c.origin, fs.c.ts, fs.c.step, f.c.model_version, fs.c.mean, fs.c.bounds, o.c["values"])
                 .select_from(fs.join(f, f.c.id == fs.c.forecast_id)
                              .join(o, sa.and_(o.c.series_id == fs.c.series_id, o.c.ts == fs.c.ts)))
                 .where(fs.c.series_id == series_id))
        if step is not None:
            query = query.where(fs.c.step == int(step))
        order = [fs.c.ts, f.c.origin, fs.c.forecast_id]
        with self.engine.begin() as conn:
            columns = conn.execute(sa.select(series_table.c.columns).where(series_table.c.id == series_id)).scalar()
            if last is not None:
                rows = conn.execute(query.order_by(*[c.desc() for c in order]).limit(max(int(last), 0))).all()[::-1]
            else:
                rows = conn.execute(query.order_by(*order)).all()
        base = ["origin", "timestamp", "step", "model_version", "mean"]
        if not rows:
            return pd.DataFrame({"origin": _index([]), "timestamp": _index([]), "step": np.array([], dtype="int64"),
                                 "model_version": np.array([], dtype=object), "mean": np.array([], dtype=float),
                                 "actual": np.array([], dtype=float)})
        if columns is None or target not in columns:
            raise StorageError(f"series {series_id!r}: no column {target!r} (the series has {', '.join(columns or [])})")
        j = list(columns).index(target)
        keys = sorted({k for r in rows for k in r.bounds}, key=lambda k: (not k.startswith("lower_"), _level(k)))
        frame = pd.DataFrame({
            "origin": _index([r.origin for r in rows]), "timestamp": _index([r.ts for r in rows]),
            "step": np.array([r.step for r in rows], dtype="int64"),
            "model_version": [r.model_version for r in rows],
            "mean": np.array([r.mean for r in rows], dtype=np.float64)})
        for k in keys:
            frame[k] = np.array([r.bounds.get(k, math.nan) for r in rows], dtype=np.float64)
        frame["actual"] = np.array([r[6][j] for r in rows], dtype=np.float64)
        return frame[base + keys + ["actual"]]

    # --- jobs ---------------------------------------------------------------------------------------------------

    def create_job(self, kind: str, detail: dict) -> str:
        """Record a new job (status `queued`); returns its id (16 hex characters)."""
        job_id = uuid.uuid4().hex[:16]
        with self._writer.begin() as conn:
            conn.execute(jobs_table.insert().values(id=job_id, kind=str(kind), status="queued", created=_now_iso(),
                                                    detail=jsonable(detail or {})))
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Change a job's status, started, finished, detail (merged into the stored one) or error; `started` and
        `finished` default to now when the status becomes running / succeeded or failed. KeyError when unknown."""
        allowed = {"status", "started", "finished", "detail", "error"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"job fields {sorted(unknown)} are not among {sorted(allowed)}")
        status = fields.get("status")
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status {status!r} is not one of {', '.join(JOB_STATUSES)}")
        with self._writer.begin() as conn:
            row = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == str(job_id))).first()
            if row is None:
                raise KeyError(f"no job {job_id!r}")
            values = dict(fields)
            if status == "running" and "started" not in values and row.started is None:
                values["started"] = _now_iso()
            if status in ("succeeded", "failed") and "finished" not in values:
                values["finished"] = _now_iso()
            for key in ("started", "finished"):
                if isinstance(values.get(key), (dt.datetime, pd.Timestamp)):
                    values[key] = values[key].isoformat()
            if "detail" in values:
                values["detail"] = {**(row.detail or {}), **jsonable(values["detail"] or {})}
            if values.get("error") is not None:
                values["error"] = str(values["error"])
            conn.execute(jobs_table.update().where(jobs_table.c.id == str(job_id)).values(**values))

    def job(self, job_id: str) -> dict | None:
        """A job's fields (id, kind, status, created, started, finished, detail, error), None when unknown."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == str(job_id))).first()
        return None if row is None else dict(row._mapping)

    def jobs(self, status: str | None = None) -> list[dict]:
        """Every job (with that `status` when given), oldest first."""
        query = sa.select(jobs_table).order_by(jobs_table.c.created, jobs_table.c.id)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        with self.engine.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    # --- model versions -----------------------------------------------------------------------------------------

    def add_model(self, version: str, path: str, parent: str | None, metrics: dict, status: str) -> None:
        """Register a model version (status champion, retired, rejected or candidate); a `champion` retires the
        previous one in the same transaction. A version already registered is left unchanged (re-registering the
        initial bundle after a restart is a no-op)."""
        if status not in MODEL_STATUSES:
            raise ValueError(f"model status {status!r} is not one of {', '.join(MODEL_STATUSES)}")
        with self._writer.begin() as conn:
            inserted = conn.execute(self._insert(models_table).values(
                version=str(version), path=str(path), parent=parent, created=_now_iso(), status=status,
                metrics=jsonable(metrics or {})).on_conflict_do_nothing(index_elements=["version"])).rowcount
            if inserted and status == "champion":
                conn.execute(models_table.update().where(models_table.c.status == "champion",
                                                         models_table.c.version != str(version))
                             .values(status="retired"))

    def models(self) -> list[dict]:
        """Every registered version, in registration order: version, path, parent, created, status, metrics."""
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(models_table).order_by(models_table.c.seq)).all()
        return [_model(r) for r in rows]

    def champion(self) -> dict | None:
        """The serving version's fields (see `models`), None when there is none."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(models_table).where(models_table.c.status == "champion")
                               .order_by(models_table.c.seq.desc())).first()
        return None if row is None else _model(row)

    def set_champion(self, version: str) -> None:
        """Make `version` the champion and the previous champion `retired`, in one transaction (KeyError if unknown)."""
        with self._writer.begin() as conn:
            if conn.execute(sa.select(models_table.c.seq).where(models_table.c.version == str(version))).first() is None:
                raise KeyError(f"no model version {version!r}")
            conn.execute(models_table.update().where(models_table.c.status == "champion",
                                                     models_table.c.version != str(version)).values(status="retired"))
            conn.execute(models_table.update().where(models_table.c.version == str(version)).values(status="champion"))

    def set_model_status(self, version: str, status: str) -> None:
        """Set a version's status (e.g. `rejected`); use `set_champion` to promote (KeyError if unknown)."""
        if status not in MODEL_STATUSES or status == "champion":
            raise ValueError(f"model status {status!r}: use one of retired, rejected, candidate (set_champion promotes)")
        with self._writer.begin() as conn:
            if conn.execute(models_table.update().where(models_table.c.version == str(version))
                            .values(status=status)).rowcount == 0:
                raise KeyError(f"no model version {version!r}")


def _level(key: str) -> float:
    """The numeric level of an interval key such as lower_97.5 (for ordering)."""
    try:
        return float(key.split("_", 1)[1])
    except (IndexError, ValueError):
        return math.inf


def _model(row: sa.Row) -> dict:
    """A models row as the public dict (without the internal sequence number)."""
    out = dict(row._mapping)
    out.pop("seq", None)
    return out
