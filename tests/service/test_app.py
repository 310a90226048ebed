"""The FastAPI service (lstmkit.service.app) through FastAPI's TestClient, over SQLite and PostgreSQL (db_url)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lstmkit.config import ServeConfig
from lstmkit.service.app import create_app

KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}


def body_of(frame: pd.DataFrame) -> dict:
    """The observations/window JSON body of a frame's rows."""
    return {"timestamps": [t.isoformat() for t in frame.index],
            "columns": {c: [float(v) for v in frame[c]] for c in frame.columns}}


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    """The loaded tiny bundle (to compare the service's answers with Bundle.predict)."""
    from lstmkit.bundle.runtime import load_bundle

    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db(request, tmp_path_factory):
    """A database shared by the module's tests (they use distinct series): SQLite file or fresh PostgreSQL database."""
    from tests.conftest import empty_database

    with empty_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def client(tiny_bundle, module_db, tmp_path_factory):
    """A started client with default settings, shared by the module's tests on one database (started once: fast)."""
    app = create_app(tiny_bundle, ServeConfig(), KEY, db_url=module_db, state=tmp_path_factory.mktemp("state"))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def make_client(tiny_bundle, db_url, tmp_path):
    """Factory of started TestClients with their own settings and database (db_url: SQLite and PostgreSQL)."""
    clients = []

    def make(**settings) -> TestClient:
        app = create_app(tiny_bundle, ServeConfig(**settings), KEY, db_url=db_url, state=tmp_path / "state")
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def count(client: TestClient, series: str) -> int:
    """Observations stored for a series (through the app's storage)."""
    return client.app.state.service.storage.count(series)


def test_health_and_readiness(tiny_bundle, tmp_path, bundle):
    """healthz always answers; readyz is 503 before the lifespan started the service, 200 with the version after."""
    app = create_app(tiny_bundle, ServeConfig(), KEY, state=tmp_path / "state")
    cold = TestClient(app)  # not entered: the lifespan has not run
    assert cold.get("/healthz").json() == {"status": "ok"}
    r = cold.get("/readyz")
    assert r.status_code == 503 and "not ready" in r.json()["detail"]
    assert cold.get("/v1/models").status_code == 503
    with TestClient(app) as warm:
        r = warm.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "model_version": bundle.version}
    assert (tmp_path / "state" / "service.db").is_file()  # the default database: SQLite in the state folder


def test_models(client, bundle):
    """/v1/models: the serving version, its cutoff and metrics, the bundle's shape."""
    r = client.get("/v1/models")
    assert r.status_code == 200
    m = r.json()
    assert m["serving"] == bundle.version and m["columns"] == bundle.columns and m["horizon"] == bundle.horizon
    assert m["lookback"] == bundle.lookback and m["freq"] == bundle.freq
    (info,) = m["models"]
    assert info["version"] == bundle.version and info["serving"] is True
    assert pd.Timestamp(info["cutoff"]) == bundle.cutoff


def test_append_idempotent_and_conflicts(client, tiny_series):
    """Appends store new rows; re-sends are duplicates; other values at a stored timestamp are a 409, nothing stored."""
    r = client.post("/v1/series/s1/observations", json=body_of(tiny_series.iloc[:50]), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 50 and r.json()["total"] == 50
    assert pd.Timestamp(r.json()["last"]) == tiny_series.index[49]
    r = client.post("/v1/series/s1/observations", json=body_of(tiny_series.iloc[40:60]), headers=AUTH)
    assert r.json()["stored"] == 10 and r.json()["duplicates"] == 10 and r.json()["total"] == 60
    changed = tiny_series.iloc[55:65].copy()
    changed.iloc[0, 0] += 1.0
    r = client.post("/v1/series/s1/observations", json=body_of(changed), headers=AUTH)
    assert r.status_code == 409 and "s1" in r.json()["detail"]
    assert count(client, "s1") == 60


@pytest.mark.parametrize("case", ["gap", "out_of_order", "nan", "inf_text", "unknown_column", "missing_column",
                                  "extra_field", "lengths", "bad_timestamp", "null_value", "string_value", "empty"])
def test_append_rejections_store_nothing(client, tiny_series, case):
    """Bad bodies are 4xx with a message naming the problem, and store nothing (not even their valid rows)."""
    client.post("/v1/series/s2/observations", json=body_of(tiny_series.iloc[:30]), headers=AUTH)
    body = body_of(tiny_series.iloc[30:40])
    raw = None
    expect = None
    if case == "gap":
        body = body_of(tiny_series.iloc[32:40])
        expect = "gap"
    elif case == "out_of_order":
        body = body_of(tiny_series.iloc[30:40].iloc[::-1])
        expect = "increase"
    elif case == "nan":
        raw = json.dumps(body).replace(str(body["columns"]["x1"][3]), "NaN", 1)
        expect = "finite"
    elif case == "inf_text":
        raw = json.dumps(body).replace(str(body["columns"]["target"][2]), "Infinity", 1)
        expect = "finite"
    elif case == "unknown_column":
        body["columns"]["pressure"] = body["columns"]["x1"]
        expect = "pressure"
    elif case == "missing_column":
        del body["columns"]["x2"]
        expect = "x2"
    elif case == "extra_field":
        body["note"] = "hello"
        expect = "Extra inputs"
    elif case == "lengths":
        body["columns"]["x3"] = body["columns"]["x3"][:-1]
        expect = "'x3' has 9 values"
    elif case == "bad_timestamp":
        body["timestamps"][4] = "2024-02-30T00:00:00"
        expect = "ISO-8601"
    elif case == "null_value":
        body["columns"]["x1"][0] = None
        expect = "number"
    elif case == "string_value":
        body["columns"]["x1"][0] = "1.5"
        expect = "number"
    elif case == "empty":
        body = {"timestamps": [], "columns": {c: [] for c in tiny_series.columns}}
        expect = "at least 1"
    headers = {**AUTH, "content-type": "application/json"}
    r = client.post("/v1/series/s2/observations", content=raw, headers=headers) if raw else \
        client.post("/v1/series/s2/observations", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert expect in json.dumps(r.json()), r.text
    assert count(client, "s2") == 30


def test_api_key_required(client, tiny_series):
    """Every POST without the key or with a wrong one is 401 and changes nothing; GETs need no key."""
    body = body_of(tiny_series.iloc[:30])
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}):
        r = client.post("/v1/series/s3/observations", json=body, headers=headers)
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert client.post("/v1/forecast", json={"window": body, "horizon": 1}, headers=headers).status_code == 401
        assert client.post("/v1/models/rollback", headers=headers).status_code == 401
        assert client.post("/v1/retrain", json={"series_id": "s3"}, headers=headers).status_code == 401
    assert count(client, "s3") == 0
    assert client.get("/v1/models").status_code == 200


def test_no_key_configured_refuses_posts(tiny_bundle, db_url, tmp_path, tiny_series):
    """A service built without a key refuses every POST (401 naming LSTMKIT_API_KEY)."""
    app = create_app(tiny_bundle, ServeConfig(), None, db_url=db_url, state=tmp_path / "state")
    with TestClient(app) as c:
        r = c.post("/v1/series/s/observations", json=body_of(tiny_series.iloc[:5]), headers={"X-API-Key": ""})
        assert r.status_code == 401 and "LSTMKIT_API_KEY" in r.json()["detail"]


def test_oversized_bodies(make_client, tiny_series):
    """Bodies over serve.max_body_bytes are 413, from Content-Length and from a streamed body; nothing stored."""
    client = make_client(max_body_bytes=2000)
    body = json.dumps(body_of(tiny_series.iloc[:40])).encode()
    assert len(body) > 2000
    r = client.post("/v1/series/big/observations", content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

    def chunks():
        for i in range(0, len(body), 500):
            yield body[i:i + 500]

    r = client.post("/v1/series/big/observations", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    assert count(client, "big") == 0
    small = body_of(tiny_series.iloc[:3])
    assert client.post("/v1/series/big/observations", json=small, headers=AUTH).status_code == 200


def test_max_rows(make_client, tiny_series):
    """More rows than serve.max_rows in one request: 422 naming the field."""
    client = make_client(max_rows=20)
    r = client.post("/v1/series/m/observations", json=body_of(tiny_series.iloc[:21]), headers=AUTH)
    assert r.status_code == 422 and "timestamps" in json.dumps(r.json()["detail"])


def _rows(answer: dict) -> pd.DataFrame:
    """A forecast answer as a frame indexed by timestamp."""
    return pd.DataFrame(answer["forecast"]).set_index("timestamp")


def test_forecast_equals_bundle_predict(client, tiny_series, bundle):
    """A forecast from a stored series and from a window in the body equal Bundle.predict on the same rows."""
    rows = tiny_series.iloc[:100]
    client.post("/v1/series/fp/observations", json=body_of(rows), headers=AUTH)
    expected = bundle.predict(rows)
    for request in ({"series_id": "fp", "horizon": bundle.horizon}, {"window": body_of(rows.iloc[-30:]), "horizon": 4},
                    {"series_id": "fp"}):
        r = client.post("/v1/forecast", json=request, headers=AUTH)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model_version"] == bundle.version
        got = _rows(answer)
        assert list(got.columns) == list(expected.columns)
        assert [pd.Timestamp(t) for t in got.index] == list(expected.index)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)
    r = client.post("/v1/forecast", json={"series_id": "fp", "horizon": 2}, headers=AUTH)
    assert len(r.json()["forecast"]) == 2


@pytest.mark.parametrize("request_body, status, message", [
    ({"series_id": "nobody"}, 404, "unknown series"),
    ({"series_id": "short"}, 422, "needs the last 24"),
    ({"series_id": "f", "horizon": 5}, 422, "horizon"),
    ({"series_id": "f", "horizon": 0}, 422, "horizon"),
    ({"horizon": 1}, 422, "exactly one"),
    ({"series_id": "f", "window": "W", "horizon": 1}, 422, "exactly one"),
    ({"window": "GAP", "horizon": 1}, 422, "gap"),
    ({"window": "SHORT", "horizon": 1}, 422, "too few rows"),
    ({"window": "HUGE", "horizon": 1}, 422, "not finite"),
    ({"series_id": "bad id!"}, 422, "series_id"),
    ({"series_id": "f", "temperature": 1}, 422, "Extra inputs"),
])
def test_forecast_rejections(client, tiny_series, request_body, status, message):
    """Forecast requests that cannot be answered are 4xx naming the problem (never a 5xx)."""
    client.post("/v1/series/f/observations", json=body_of(tiny_series.iloc[:40]), headers=AUTH)
    client.post("/v1/series/short/observations", json=body_of(tiny_series.iloc[:10]), headers=AUTH)
    windows = {"W": body_of(tiny_series.iloc[:30]),
               "GAP": body_of(tiny_series.iloc[list(range(0, 20)) + list(range(21, 30))]),
               "SHORT": body_of(tiny_series.iloc[:10]),
               "HUGE": body_of(tiny_series.iloc[:30] * 1e305)}
    body = dict(request_body)
    if isinstance(body.get("window"), str):
        body["window"] = windows[body["window"]]
    r = client.post("/v1/forecast", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()), r.text


def test_batch_forecast(client, tiny_series, bundle):
    """The batch endpoint answers each request as the single endpoint would; one bad request refuses the batch."""
    client.post("/v1/series/b/observations", json=body_of(tiny_series.iloc[:60]), headers=AUTH)
    requests = [{"series_id": "b", "horizon": 3}, {"window": body_of(tiny_series.iloc[100:130]), "horizon": 4},
                {"window": body_of(tiny_series.iloc[200:224]), "horizon": 1}]
    r = client.post("/v1/forecast/batch", json={"requests": requests}, headers=AUTH)
    assert r.status_code == 200, r.text
    answers = r.json()["forecasts"]
    assert len(answers) == 3
    for req, answer in zip(requests, answers):
        single = client.post("/v1/forecast", json=req, headers=AUTH).json()
        np.testing.assert_allclose(_rows(answer).to_numpy(), _rows(single).to_numpy(), rtol=1e-5, atol=1e-6)
    expected = bundle.predict(tiny_series.iloc[100:130])
    np.testing.assert_allclose(_rows(answers[1]).to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)
    bad = [requests[0], {"series_id": "nobody"}]
    r = client.post("/v1/forecast/batch", json={"requests": bad}, headers=AUTH)
    assert r.status_code == 404 and "requests[1]" in r.json()["detail"]
    assert client.post("/v1/forecast/batch", json={"requests": []}, headers=AUTH).status_code == 422


def test_metrics_score_issued_forecasts(client, tiny_series, bundle):
    """Forecasts issued from a series are scored as their observations arrive, beside persistence and seasonal naive."""
    assert client.get("/v1/series/nobody/metrics").status_code == 404
    n0 = 60
    client.post("/v1/series/m/observations", json=body_of(tiny_series.iloc[:n0]), headers=AUTH)
    first = client.post("/v1/forecast", json={"series_id": "m"}, headers=AUTH).json()
    r = client.get("/v1/series/m/metrics")
    assert r.status_code == 200 and r.json()["scored"] == 0 and r.json()["steps"] == []
    client.post("/v1/series/m/observations", json=body_of(tiny_series.iloc[n0:n0 + 1]), headers=AUTH)
    second = client.post("/v1/forecast", json={"series_id": "m"}, headers=AUTH).json()
    client.post("/v1/series/m/observations", json=body_of(tiny_series.iloc[n0 + 1:n0 + 3]), headers=AUTH)
    m = client.get("/v1/series/m/metrics").json()
    y = tiny_series["target"].to_numpy()
    by_step = {s["step"]: s for s in m["steps"]}
    assert m["scored"] == 3 + 2 and set(by_step) == {1, 2, 3}  # first: steps 1-3 arrived; second: steps 1-2
    # step 1: origins n0-1 (first) and n0 (second)
    errors = np.array([first["forecast"][0]["mean"] - y[n0], second["forecast"][0]["mean"] - y[n0 + 1]])
    assert by_step[1]["model"]["n"] == 2
    assert math.isclose(by_step[1]["model"]["mae"], np.mean(np.abs(errors)), rel_tol=1e-9)
    assert math.isclose(by_step[1]["model"]["rmse"], np.sqrt(np.mean(errors ** 2)), rel_tol=1e-9)
    persistence = np.array([y[n0 - 1] - y[n0], y[n0] - y[n0 + 1]])
    assert math.isclose(by_step[1]["persistence"]["mae"], np.mean(np.abs(persistence)), rel_tol=1e-9)
    m_season = bundle.seasonal_period
    seasonal = np.array([y[n0 - m_season] - y[n0], y[n0 + 1 - m_season] - y[n0 + 1]])
    assert math.isclose(by_step[1]["seasonal_naive"]["mae"], np.mean(np.abs(seasonal)), rel_tol=1e-9)
    assert by_step[3]["model"]["n"] == 1
    key = next(iter(by_step[1]["coverage"]))
    lo, hi = f"lower_{key}", f"upper_{key}"
    inside = [first["forecast"][0][lo] <= y[n0] <= first["forecast"][0][hi],
              second["forecast"][0][lo] <= y[n0 + 1] <= second["forecast"][0][hi]]
    assert by_step[1]["coverage"][key] == np.mean(inside)
    drift = m["drift"]
    assert drift["band"] is not None and drift["band"] > 0 and drift["rolling_mae"] == by_step[1]["model"]["mae"]
    assert m["model_version"] == bundle.version and m["observations"] == n0 + 3


def test_jobs_rollback_and_retrain_errors(client, tiny_series):
    """Unknown job 404; rollback with nothing to roll back to 409; retrain of an unknown series 404."""
    assert client.get("/v1/jobs/abc123").status_code == 404
    r = client.post("/v1/models/rollback", headers=AUTH)
    assert r.status_code == 409 and "roll back" in r.json()["detail"]
    assert client.post("/v1/retrain", json={"series_id": "nobody"}, headers=AUTH).status_code == 404
    assert client.post("/v1/retrain", json={"series_id": "x", "extra": 1}, headers=AUTH).status_code == 422


def test_openapi_lists_schemas(client, bundle):
    """The OpenAPI document names every request/response schema, the exact columns and level keys, and the key."""
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name in ("Observations", "Columns", "Window", "ForecastRequest", "ForecastRow", "ForecastResponse",
                 "BatchForecastRequest", "BatchForecastResponse", "AppendResponse", "MetricsResponse", "ModelsResponse",
                 "Job", "JobAccepted", "RollbackResponse", "RetrainRequest", "ErrorResponse", "Ready", "Health"):
        assert name in schemas, name
    assert set(schemas["Columns"]["properties"]) == set(bundle.columns)
    assert schemas["Observations"]["additionalProperties"] is False
    row = set(schemas["ForecastRow"]["properties"])
    assert {"timestamp", "mean"} | {f"{s}_{k}" for k in bundle.labels for s in ("lower", "upper")} == row
    paths = doc["paths"]
    for path in ("/healthz", "/readyz", "/v1/models", "/v1/series/{series_id}/observations", "/v1/forecast",
                 "/v1/forecast/batch", "/v1/series/{series_id}/metrics", "/v1/retrain", "/v1/jobs/{job_id}",
                 "/v1/models/rollback"):
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_load_bundle_is_lazy(tiny_bundle):
    """`import lstmkit` does not import TensorFlow; `lstmkit.load_bundle` loads a bundle when first used."""
    import subprocess
    import sys

    code = ("import sys, lstmkit\n"
            "assert 'tensorflow' not in sys.modules and 'lstmkit.bundle.format' not in sys.modules\n"
            f"b = lstmkit.load_bundle({str(tiny_bundle)!r})\n"
            "print(b.version)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    from lstmkit.bundle.runtime import load_bundle

    assert r.stdout.strip().splitlines()[-1] == load_bundle(tiny_bundle).version
