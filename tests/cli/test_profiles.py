"""Every shipped profile (configs/*.yaml) runs end to end and builds its report, with tiny settings that keep its
structure (its stages, search strategy, interval methods, anomaly labels and deployment policies): one epoch, a few
explained windows, a few Monte Carlo and bootstrap draws, a replay of 24 observations. The downloaded datasets come
from a local HTTP server serving archives in their published layouts; the NAB profiles read the shared NAB files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lstmkit.config import parse_override
from lstmkit.stages.checks import load_checked
from tests.cli.project import copy_project, lstmkit
from tests.data.archives import electricity_zip, jena_zip
from tests.http_server import serve
from tests.paths import REPO, SHARED_DATA

pytestmark = pytest.mark.e2e

ELSEWHERE = {"quick": "tests/cli/test_e2e.py (every test there)",
             "etth2": "tests/cli/test_e2e.py::test_bundled_etth2_profile_runs_offline_with_published_figures"}
TINY = ["training.epochs=1", "explain.windows=4", "explain.steps=8", "deployment.steps=24",  # one periodic retrain
        "deployment.retrain_every=16", "deployment.latency_requests=10",
        "uncertainty.mc_samples=10", "uncertainty.bootstrap=50"]  # the same interval methods, fewer draws
SHRINK = {  # what else each profile needs to stay small here (its structure unchanged)
    "default": ["data.length=1680", "tuning.max_trials=2", "tuning.epochs=1"],  # ten weeks; the bayesian search kept
    "ett": [f"data.path={REPO / 'lstmkit' / 'bundled' / 'ETTh2.csv'}"],  # any ETT file: the bundled ETTh2
    "jena_climate": ["split.train=0.6", "split.val=0.2", "split.test=0.2"],  # three weeks of fixture rows
}
PROFILES = sorted(p.stem for p in (REPO / "configs").glob("*.yaml") if p.stem not in ELSEWHERE)


def shared(value: str | None) -> str | None:
    """A profile's `../shared/data/...` path as the absolute path of the shared data (the run is in a copy)."""
    prefix = "../shared/data/"
    return str(SHARED_DATA / value[len(prefix):]) if value and value.startswith(prefix) else value


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A folder serving the downloaded datasets' archives under their upstream names."""
    folder = tmp_path_factory.mktemp("mirror")
    jena_zip(folder)
    electricity_zip(folder)
    return folder


def test_every_shipped_profile_runs_end_to_end_in_ci():
    shipped = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert shipped == set(PROFILES) | set(ELSEWHERE) and len(PROFILES) >= 7
    assert set(SHRINK) <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_runs_end_to_end_and_builds_its_report(profile, mirror, tmp_path):
    project = copy_project(tmp_path / "project")
    raw = yaml.safe_load((REPO / "configs" / f"{profile}.yaml").read_text())
    settings = TINY + SHRINK.get(profile, [])
    for key in ("data.path", "anomalies.labels"):
        section, name = key.split(".")
        value = (raw.get(section) or {}).get(name)
        if shared(value) != value:
            settings.append(f"{key}={shared(value)}")
    cfg = load_checked(REPO / "configs" / f"{profile}.yaml", dict(parse_override(s) for s in settings))
    env = {"LSTMKIT_CACHE_DIR": str(tmp_path / "cache")}
    with serve(mirror) as base:
        env["LSTMKIT_DATASET_BASE_URL"] = base
        proc = lstmkit(project, "run", "--config", f"configs/{profile}.yaml",
                       *[arg for s in settings for arg in ("--set", s)], env=env)
    assert "[9/9] deployment" in proc.stdout
    run = project / "runs" / profile

    evaluation = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert {"persistence", "seasonal_naive", "linear", "nlinear", "autoreg"} <= set(evaluation["baselines"])
    assert evaluation["model"]["scaled"]["mae"] > 0
    uncertainty = json.loads((run / "uncertainty" / "metrics.json").read_text())
    made = {key.split("/")[1] for key in uncertainty if key != "meta"}
    for method in cfg.uncertainty.method:  # each configured method made intervals, or the chapter says why not
        assert method in made or method in uncertainty["meta"]["skipped"], method
    deployment = json.loads((run / "deployment" / "metrics.json").read_text())
    assert list(deployment["policies"]) == list(cfg.deployment.policies)
    assert deployment["meta"]["steps"] == 24
    if cfg.anomalies.labels:
        anomalies = json.loads((run / "anomalies" / "metrics.json").read_text())
        assert anomalies["label_events"] > 0
    if cfg.tuning.strategy != "none":
        best = json.loads((run / "tuning" / "best_hyperparameters.json").read_text())
        assert best["strategy"] == cfg.tuning.strategy and best["trials"] == cfg.tuning.max_trials

    lstmkit(project, "report", "--run-dir", f"runs/{profile}")
    html = project / "_build" / "html" / "book"
    assert (html / "09_deployment.html").is_file() and (html / "05_evaluation.html").is_file()
