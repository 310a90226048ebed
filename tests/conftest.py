"""Shared fixtures: toy prepared series whose values encode their row number."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler
from xdist.scheduler import LoadScopeScheduling

from lstmkit.data.splits import SplitBounds
from lstmkit.data.windows import Prepared

FEATURE_OFFSET = 1000.0  # the feature channel holds 1000 + row, the target channel holds row


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


BY_PARAMETER = ("tests/cli/test_profiles.py", "tests/cli/test_e2e_frequencies.py")  # one run per parameter value


# Worker seconds of the costliest units of work (measured in CI, rounded); any other unit costs about 1 s a test.
COSTS = {"tests/tuning/test_ray_cluster.py": 580, "tests/tuning/test_tuning.py": 470, "tests/cli/test_e2e.py": 300,
         "tests/cli/test_e2e_etth2.py": 250, "tests/cli/test_e2e_compare.py": 280, "tests/service/test_reliability.py": 220,
         "tests/cli/test_profiles.py::electricity": 210, "tests/cli/test_profiles.py::ett": 200,
         "tests/service/test_retrain.py": 190, "tests/models/test_contract.py": 170, "tests/tuning/test_ray.py": 170,
         "tests/cli/test_profiles.py::jena_climate": 170, "tests/cli/test_profiles.py::nab_machine_temperature": 150,
         "tests/explain/test_ig_ground_truth.py": 140, "tests/cli/test_profiles.py::default": 140,
         "tests/cli/test_profiles.py::nab_ec2_latency": 120, "tests/cli/test_profiles.py::nab_ambient_temperature": 110,
         "tests/cli/test_e2e_frequencies.py::hourly": 90, "tests/cli/test_e2e_frequencies.py::daily": 90,
         "tests/cli/test_e2e_frequencies.py::weekly": 90}


def unit_cost(scope: str, tests: int) -> float:
    """The expected worker seconds of a unit of work: its measured cost, else one second a test."""
    return COSTS.get(scope, float(tests))


class RunsSpread(LoadScopeScheduling):
    """pytest-xdist scheduling (`-n 2` in pyproject.toml): each test file on one worker, so that its module fixtures (a
    trained run, a bundle, a replay) are built once; in the files of BY_PARAMETER, each parameter value (each shipped
    profile, each time step: one run apiece) on whichever worker is free, so that the runs spread out. (xdist's own
    `--dist loadgroup` cannot do this under pytest 9, whose node ids it can no longer rename.) The costliest units go
    first, so that the two workers finish together."""

    def _assign_work_unit(self, node) -> None:
        """Hand the node the costliest unit left (longest first: the last units to finish are short ones)."""
        costliest = max(self.workqueue, key=lambda scope: unit_cost(scope, len(self.workqueue[scope])))
        self.workqueue.move_to_end(costliest, last=False)
        super()._assign_work_unit(node)

    def _split_scope(self, nodeid: str) -> str:
        """The unit of work of a test: its file, or its file and parameter value in the files of BY_PARAMETER."""
        file = nodeid.split("::")[0]
        if file in BY_PARAMETER and nodeid.endswith("]"):
            return f"{file}::{nodeid[nodeid.index('[') + 1:-1]}"
        return file


class Scheduling:
    """The plugin that names the test workers' scheduler (see RunsSpread); registered only where xdist is loaded, so
    that `pytest -p no:xdist` runs the suite in one process."""

    @staticmethod
    def pytest_xdist_make_scheduler(config: pytest.Config, log) -> RunsSpread:
        """The scheduler of the test workers."""
        return RunsSpread(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """Use RunsSpread when the tests run on xdist workers."""
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(Scheduling(), "lstmkit-scheduling")


def load_benchmark(name: str):
    """Import benchmarks/<name>.py as the module `bench_<name>` (benchmarks/ on sys.path for its `common` import)."""
    import importlib.util
    import sys

    script = BENCHMARKS / f"{name}.py"
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"bench_{name}"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def make_row_prepared(n: int = 100, train: int = 60, val: int = 20, test: int | None = None,
                      lookback: int = 8, horizon: int = 3, target_values: np.ndarray | None = None,
                      feature_values: np.ndarray | None = None) -> Prepared:
    """A Prepared whose scaled target is the row number (or `target_values`) and feature is 1000 + row
    (or `feature_values`).

    Scalers are identities, so scaled and original units coincide and every window value names its row.
    """
    test = n - train - val if test is None else test
    rows = np.arange(n, dtype=float)
    y = rows if target_values is None else np.asarray(target_values, dtype=float)
    x = FEATURE_OFFSET + rows if feature_values is None else np.asarray(feature_values, dtype=float)
    original = np.stack([x, y], axis=1)
    identity = StandardScaler(with_mean=False, with_std=False).fit(original)
    identity_target = StandardScaler(with_mean=False, with_std=False).fit(original[:, 1:])
    bounds = SplitBounds(train=(0, train), val=(train, train + val), test=(train + val, train + val + test))
    return Prepared(index=pd.date_range("2024-01-01", periods=n, freq="h"), columns=["x", "target"], target="target",
                    bounds=bounds, scaler=identity, target_scaler=identity_target,
                    scaled=original.astype(np.float32), lookback=lookback, horizon=horizon)


@pytest.fixture(scope="session")
def row_prepared():
    """Factory for toy Prepared series (see make_row_prepared)."""
    return make_row_prepared


# --- Databases for the service's storage (SQLite file and PostgreSQL) -----------------------------------------------
# PostgreSQL comes from LSTMKIT_TEST_POSTGRES_URL (`.ci/postgres` starts one on 127.0.0.1:55432 and prints the URL);
# each test gets a fresh database created from it and dropped afterwards. Unset: the postgresql cases skip, unless
# LSTMKIT_REQUIRE_POSTGRES=1 (CI), where they fail.

POSTGRES_URL_ENV = "LSTMKIT_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LSTMKIT_REQUIRE_POSTGRES"


def postgres_base_url() -> str | None:
    """The server URL the postgresql test databases are created from (None when unset; a failure if required)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is unset: start a server with "
                    f"`.ci/postgres` and export {POSTGRES_URL_ENV}=<the URL it prints>", pytrace=False)
    return None


@contextlib.contextmanager
def fresh_postgres_database(base_url: str):
    """Create a database `lstmkit_test_<hex>` on the server of `base_url`, yield its URL, drop it (FORCE) after."""
    import uuid

    import sqlalchemy as sa

    name = f"lstmkit_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"cannot create a test database on {base_url} ({POSTGRES_URL_ENV}): {exc.orig}", pytrace=False)
    try:
        yield sa.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def empty_database(kind: str, folder: Path):
    """SQLAlchemy URL of an empty database of `kind`: a SQLite file in `folder`, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'lstmkit-test.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (start a server with `.ci/postgres`)")
    with fresh_postgres_database(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """SQLAlchemy URL of an empty database: a SQLite file in tmp_path, or a fresh PostgreSQL database (see above)."""
    with empty_database(request.param, tmp_path) as url:
        yield url


TINY_ROWS = 600  # hourly rows of the tiny bundle's synthetic series


def tiny_config():
    """The tiny bundle's configuration: LSTM 1x4, look-back 24, horizon 4, 2 epochs, synthetic hourly data."""
    from lstmkit.config import from_dict

    return from_dict({"data": {"length": TINY_ROWS}, "window": {"lookback": 24, "horizon": 4},
                      "model": {"architecture": "lstm", "layers": 1, "units": 4, "dropout": 0.0, "batch_size": 64},
                      "training": {"epochs": 2, "verbose": 0}, "evaluation": {"seasonal_period": 24}})


@pytest.fixture(scope="session")
def tiny_series() -> pd.DataFrame:
    """The hourly synthetic frame (DatetimeIndex `date`, freq h; columns x1, x2, x3, target) tiny_bundle is trained on."""
    from lstmkit.data.synthetic import make_synthetic

    frame, _ = make_synthetic(length=TINY_ROWS, seed=7)
    return frame


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_series):
    """Path of a bundle (write_bundle) of a tiny LSTM trained on tiny_series; read-only: copy it before changing it."""
    from lstmkit.bundle.format import validation_errors, write_bundle
    from lstmkit.data.windows import prepare
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec

    cfg = tiny_config()
    prepared = prepare(tiny_series, cfg)
    forecaster = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg, seed=cfg.seed)
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    return write_bundle(out, forecaster, prepared.scaler, prepared.target_scaler, prepared.columns, prepared.target,
                        "h", tiny_series.index[prepared.bounds.train[1] - 1], cfg,
                        {"source": "val"}, validation_errors(forecaster, prepared), {})
