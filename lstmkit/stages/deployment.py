"""Deployment stage: replay the test span as a stream against `lstmkit serve` on the loopback, one policy at a time.

For each retraining policy of `deployment.policies` (`static`: the exported model throughout; `periodic`: a retrain
job every `deployment.retrain_every` new observations, `serve.retrain_every`; `drift`: a retrain job when the
service's rolling error leaves its calibrated band, `serve.drift`), a fresh service is started as a subprocess on
127.0.0.1 with a free port, its own state folder and SQLite database under `deployment/<policy>/` and a generated API
key; the policies' services start side by side and are all ready before the first replay begins. The series is
seeded with every row before the test span (original units, as the data stage stored them), then
the test span is replayed one observation at a time: append it, then ask the service for a forecast from the series
it has stored. The service only ever sees the observations appended so far, so no forecast can look ahead.

When an append starts a retrain job, the stream waits until the job has finished (and a promoted challenger serves)
before the next observation: the replay is then the same whatever the machine's speed, at the price of hiding how
long a retrain takes (which the events record); a job started by the last observation is not waited for (nothing is
forecast after it) and stops with the service. Before the stream, `deployment.latency_requests` single-window
forecasts (the history's last window in the request body) are timed for latency percentiles, while no retrain job
competes for the CPU; after it the service is stopped with SIGTERM.

Scoring, per policy: every forecast of an observation of the replayed span, per horizon step, in original units and
in the training scaler's units, beside the persistence and seasonal-naive forecasts made at the same origins from the
same observations; the coverage of the served intervals; the rolling step-1 MAE over time; the retrain events."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.bundle.runtime import load_bundle
from lstmkit.config import Config
from lstmkit.core import progress
from lstmkit.core.atomic import atomic_path, atomic_write_json, read_json
from lstmkit.core.errors import BundleError, DeploymentError
from lstmkit.core.net import free_port
from lstmkit.data.series import read_series
from lstmkit.data.splits import split_bounds
from lstmkit.service.storage import Storage
from lstmkit.stages.export import ensure_bundle

SERIES_ID = "replay"
STARTUP_TIMEOUT_S = 300.0  # TensorFlow's import and the bundle's warm-up on a busy machine
JOB_TIMEOUT_S = 1800.0     # one retrain job (it trains a model)
PERCENTILES = (50, 90, 99)


@dataclass
class Deployment:
    """The replay of every policy: `replay` one row per policy, origin and horizon step; `metrics` the summary."""

    replay: pd.DataFrame
    metrics: dict
    bundle: Path | None
    reused: bool = False
    skipped: str | None = None  # why the run's model cannot be served (no bundle could be exported), else None

    @property
    def policies(self) -> list[str]:
        """The replayed policies, in the configured order."""
        return list(self.metrics["policies"])

    def step1(self, policy: str) -> pd.DataFrame:
        """The step-1 forecasts of one policy indexed by the forecast timestamp: actual, mean, lower_*/upper_*, version."""
        r = self.replay
        return r[(r["policy"] == policy) & (r["step"] == 1)].set_index("timestamp").sort_index()


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ('' when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def policy_settings(policy: str, retrain_every: int, serve=None, bundle_serve=None) -> list[str]:
    """The `--set` overrides of a policy's service: its retrain triggers (the others off), and every other `serve.*`
    key of the run's configuration (`serve`) that differs from the bundle's (`bundle_serve`)."""
    triggers = {"static": (0, False), "periodic": (retrain_every, False), "drift": (0, True)}
    if policy not in triggers:
        raise DeploymentError(f"deployment.policies: unknown policy {policy!r}; policies: {', '.join(triggers)}")
    every, drift = triggers[policy]
    out = ["--set", f"serve.retrain_every={every}", "--set", f"serve.drift={str(drift).lower()}"]
    if serve is not None and bundle_serve is not None:
        for name in type(serve).model_fields:
            value = getattr(serve, name)
            if name not in ("host", "port", "db", "state", "retrain_every", "drift") and value != getattr(bundle_serve, name):
                out += ["--set", f"serve.{name}={json.dumps(value)}"]
    return out


class Service:
    """`lstmkit serve BUNDLE` in a subprocess on 127.0.0.1 (free port, own state folder and database, generated API
    key); a context manager that waits for /readyz on entry and stops the service with SIGTERM on exit."""

    def __init__(self, bundle: Path, state: Path, settings: list[str] | None = None, timeout: float = STARTUP_TIMEOUT_S,
                 seed=None):
        """Remember what to start; `state` is emptied first (a replay starts from a fresh database). `seed(db_url)`,
        when given, fills the fresh database before the service starts."""
        self.bundle, self.state, self.settings, self.timeout = Path(bundle), Path(state), settings or [], timeout
        self.seed = seed
        self.api_key = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.client = None

    @property
    def url(self) -> str:
        """Base URL of the running service."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        """The service's SQLite database, in its state folder."""
        return f"sqlite:///{self.state / 'service.db'}"

    @property
    def log(self) -> Path:
        """The service's stdout and stderr."""
        return self.state / "service.log"

    def start(self, fresh: bool = True) -> Service:
        """Start the subprocess and wait until /readyz answers 200; DeploymentError with the log's tail otherwise.
        `fresh`: empty the state folder (and seed the database) first; False restarts on the state as it is."""
        self.launch(fresh)
        return self.wait_ready()

    def launch(self, fresh: bool = True) -> None:
        """Start the subprocess without waiting for it (several services can then start side by side)."""
        import httpx

        if fresh:
            shutil.rmtree(self.state, ignore_errors=True)
            self.state.mkdir(parents=True)
            if self.seed is not None:
                self.seed(self.db_url)
        self.port = free_port()
        cmd = [sys.executable, "-m", "lstmkit.cli", "serve", str(self.bundle), "--host", "127.0.0.1",
               "--port", str(self.port), "--state", str(self.state / "state"), "--db", self.db_url, *self.settings]
        env = {k: v for k, v in os.environ.items() if k != "LSTMKIT_PROGRESS_FILE"}
        env |= {"LSTMKIT_API_KEY": self.api_key, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=120.0)
        self.launched = time.monotonic()

    def wait_ready(self) -> Service:
        """Wait until the launched service answers GET /readyz with 200; DeploymentError with its log's tail if it
        exits or is not ready within the timeout."""
        import httpx

        deadline = self.launched + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise DeploymentError(f"`lstmkit serve {self.bundle}` exited with status {self.proc.returncode} before "
                                      f"it was ready; the end of its log {self.log}:\n{log_tail(self.log)}")
            try:
                if self.client.get("/readyz", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.close()
        raise DeploymentError(f"`lstmkit serve {self.bundle}` was not ready (GET /readyz) after {self.timeout:.0f} s; "
                              f"the end of its log {self.log}:\n{log_tail(self.log)}")

    def close(self) -> None:
        """Stop the service: SIGTERM, then wait (SIGKILL after 30 s); close the HTTP client."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Service:
        """Start the service."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop the service."""
        self.close()

    def request(self, method: str, path: str, **kwargs) -> dict:
        """One request; its JSON answer, or DeploymentError naming the request, the status and the message."""
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise DeploymentError(f"{method} {path} to the service at {self.url} failed: {e}; the end of its log "
                                  f"{self.log}:\n{log_tail(self.log)}") from None
        if response.status_code >= 400:
            raise DeploymentError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()


# ------------------------------------------------------------------ HTTP bodies


def observation_body(frame: pd.DataFrame) -> dict:
    """The body of POST /v1/series/{id}/observations for the rows of a frame (ISO timestamps, float columns)."""
    return {"timestamps": [t.isoformat() for t in frame.index],
            "columns": {c: [float(v) for v in frame[c].to_numpy()] for c in frame.columns}}


def started_jobs(answer: dict) -> list[str]:
    """Ids of the retrain jobs an append answer says it started (keys `retrain_job`, `job_id`, `jobs`)."""
    found = []
    for key in ("retrain_job", "job_id", "job", "retrain"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, dict) and value.get("id"):
            found.append(str(value["id"]))
    for value in answer.get("jobs") or []:
        found.append(str(value["id"] if isinstance(value, dict) else value))
    return found


def serving_version(service: Service) -> str | None:
    """The version that serves now, from GET /v1/models."""
    models = service.request("GET", "/v1/models")
    if isinstance(models, dict):
        for key in ("serving", "champion", "current", "version"):
            value = models.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and "version" in value:
                return value["version"]
        models = models.get("versions") or models.get("models") or []
    for m in models:
        if m.get("serving") or m.get("status") == "champion":
            return m.get("version")
    return None


def wait_for_job(service: Service, job_id: str, timeout: float = JOB_TIMEOUT_S) -> dict:
    """Poll GET /v1/jobs/{id} until the job has finished (a promoted challenger already serves when it has)."""
    deadline = time.monotonic() + timeout
    while True:
        job = service.request("GET", f"/v1/jobs/{job_id}")
        if job.get("status") in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            raise DeploymentError(f"retrain job {job_id} did not finish within {timeout:.0f} s; the end of the "
                                  f"service's log {service.log}:\n{log_tail(service.log)}")
        time.sleep(0.25)
    return job


# ------------------------------------------------------------------ the replay


def forecast_rows(answer: dict, policy: str, index: int, origin: pd.Timestamp, latency_ms: float) -> list[dict]:
    """One row per horizon step of a forecast answer: policy, replay index, origin, step, timestamp, mean, bounds."""
    rows = []
    for k, point in enumerate(answer["forecast"], start=1):
        ts = pd.Timestamp(point["timestamp"])
        row = {"policy": policy, "index": index, "origin": origin, "step": k,
               "timestamp": ts.tz_convert(None) if ts.tz is not None else ts,
               "model_version": answer["model_version"], "latency_ms": latency_ms}
        row |= {key: float(v) for key, v in point.items() if key == "mean" or key.startswith(("lower_", "upper_"))}
        rows.append(row)
    return rows


def seed_history(history: pd.DataFrame, freq: str):
    """A function that stores the history rows as series `replay` in a fresh service database (the service's own
    storage layer, one append) and resets its new-observation counter: a bulk load of the past is not new data, and
    over HTTP it would count towards the every-N retrain trigger at once."""
    def seed(db_url: str) -> None:
        storage = Storage(db_url)
        try:
            storage.append(SERIES_ID, pd.DatetimeIndex(history.index),
                           {c: history[c].to_numpy(dtype=float) for c in history.columns}, freq)
            storage.reset_counter(SERIES_ID)
        finally:
            storage.engine.dispose()
    return seed


def replay_policy(service: Service, policy: str, history: pd.DataFrame, stream: pd.DataFrame, horizon: int,
                  metrics_every: int, echo=None) -> tuple[list[dict], list[dict], list[dict]]:
    """Append the stream one row at a time to a service seeded with the history, and forecast after each append (and
    once before the first): returns the forecast rows, the retrain events and the service's metrics over time."""
    path = f"/v1/series/{SERIES_ID}/observations"
    rows: list[dict] = []
    events: list[dict] = []
    service_metrics: list[dict] = []

    def forecast(i: int, origin: pd.Timestamp) -> None:
        t0 = time.perf_counter()
        answer = service.request("POST", "/v1/forecast", json={"series_id": SERIES_ID, "horizon": horizon})
        rows.extend(forecast_rows(answer, policy, i, origin, (time.perf_counter() - t0) * 1000))

    def wait_for(answer: dict, i: int) -> None:  # deterministic replay: the stream waits for a job it started
        for job_id in started_jobs(answer):
            if i == len(stream) - 1:  # started by the last observation: nothing is forecast after it
                events.append({"policy": policy, "job": job_id, "observation": i + 1, "timestamp": str(stream.index[i]),
                               "reason": None, "status": "not awaited", "decision": "started by the last observation: "
                               "stopped with the service", "promoted": False, "from_version": None, "to_version": None,
                               "challenger": None, "champion_mse": None, "challenger_mse": None, "wait_s": 0.0,
                               "error": None})
                continue
            before = serving_version(service)
            t0 = time.perf_counter()
            job = wait_for_job(service, job_id)
            detail = job.get("detail") or {}
            result = detail.get("result") or {}
            after = serving_version(service)
            events.append({"policy": policy, "job": job_id, "observation": i + 1, "timestamp": str(stream.index[i]),
                           "reason": detail.get("reason") or job.get("kind"), "status": job.get("status"),
                           "decision": result.get("decision") or ("failed" if job.get("status") == "failed" else None),
                           "promoted": bool(after and after != before), "from_version": before, "to_version": after,
                           "challenger": result.get("version"), "champion_mse": result.get("champion_mse"),
                           "challenger_mse": result.get("challenger_mse"), "wait_s": round(time.perf_counter() - t0, 2),
                           "error": job.get("error")})

    forecast(0, history.index[-1])
    for i in range(len(stream)):
        wait_for(service.request("POST", path, json=observation_body(stream.iloc[i:i + 1])), i)
        if (i + 1) % metrics_every == 0 or i == len(stream) - 1:
            m = service.request("GET", f"/v1/series/{SERIES_ID}/metrics")
            step1 = next((s for s in m.get("steps", []) if s.get("step") == 1), {})
            service_metrics.append({"observation": i + 1, "timestamp": str(stream.index[i]),
                                    "model_version": m.get("model_version"), "scored": m.get("scored"),
                                    "mae_step1": (step1.get("model") or {}).get("mae"),
                                    "rolling_mae": (m.get("drift") or {}).get("rolling_mae"),
                                    "band": (m.get("drift") or {}).get("band")})
            wait_for(m, i)
        if i < len(stream) - 1:  # after the last observation there is nothing of the span left to forecast
            forecast(i + 1, stream.index[i])
        progress.report("deployment", policy=policy, observation=f"{i + 1}/{len(stream)}")
    if echo:
        echo(f"{policy}: {len(stream)} observations replayed, {len(events)} retrain job(s)")
    return rows, events, service_metrics


def time_latency(service: Service, window: pd.DataFrame, horizon: int, n: int) -> np.ndarray:
    """Milliseconds of `n` single-window forecasts (the window in the body), one at a time, after two warm-up calls."""
    body = {"window": observation_body(window), "horizon": horizon}
    for _ in range(2):
        service.request("POST", "/v1/forecast", json=body)
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        service.request("POST", "/v1/forecast", json=body)
        times[i] = (time.perf_counter() - t0) * 1000
    return times


def latency_summary(ms: np.ndarray) -> dict:
    """p50/p90/p99, mean and count of latencies in milliseconds."""
    ms = np.asarray(ms, dtype=float)
    if len(ms) == 0:
        return {"n": 0}
    return {"n": int(len(ms)), "mean": float(ms.mean()),
            **{f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES}}


# ------------------------------------------------------------------ scoring


def baseline_forecasts(values: np.ndarray, origins: np.ndarray, horizon: int, period: int) -> dict[str, np.ndarray]:
    """Persistence and seasonal-naive forecasts (len(origins), horizon) made at row positions `origins` of `values`
    (1-D, original units) from the rows up to each origin only: step k repeats the last value, or the value one
    season (as many seasons as needed) before the forecast row."""
    steps = np.arange(1, horizon + 1)
    persistence = np.repeat(values[origins][:, None], horizon, axis=1)
    back = period * np.ceil(steps / period).astype(int) - steps  # rows before the origin: 0 .. period - 1
    seasonal = values[origins[:, None] - back[None, :]]
    return {"persistence": persistence, "seasonal_naive": seasonal}


def error_table(errors: np.ndarray, valid: np.ndarray, scale: float) -> dict:
    """MAE and RMSE overall and per horizon step of errors (n, horizon) where `valid`, original and scaled units."""
    out = {}
    for units, div in (("original", 1.0), ("scaled", scale)):
        e = np.where(valid, errors / div, np.nan)
        out[units] = {"mae": float(np.nanmean(np.abs(e))), "rmse": float(np.sqrt(np.nanmean(e ** 2))),
                      "mae_per_step": np.nanmean(np.abs(e), axis=0).tolist(),
                      "rmse_per_step": np.sqrt(np.nanmean(e ** 2, axis=0)).tolist()}
    return out


def rolling_window(n: int, cfg: Config) -> int:
    """Observations in the rolling step-1 MAE: `serve.metrics_window`, at most a quarter of the replay (at least 1)."""
    return max(1, min(cfg.serve.metrics_window, n // 4))


def target_scale(bundle) -> float:
    """How many original units one scaled unit of the target is (the bundle's fitted target scaler)."""
    try:
        return float(bundle.target_scaler.unit()[0]) or 1.0
    except (AttributeError, IndexError, TypeError):
        return 1.0


def score_policy(frame: pd.DataFrame, levels: list[str], scale: float, horizon: int) -> dict:
    """Errors (original and scaled), per-step errors, interval coverage and width of one policy's forecasts whose
    observation arrived during the replay (`actual` present)."""
    scored = frame[frame["actual"].notna()]
    wide = scored.pivot(index="index", columns="step", values="mean").reindex(columns=range(1, horizon + 1))
    actual = scored.pivot(index="index", columns="step", values="actual").reindex(columns=range(1, horizon + 1))
    valid = wide.notna().to_numpy() & actual.notna().to_numpy()
    out = error_table((wide - actual).to_numpy(), valid, scale)
    out["forecasts"] = int(len(wide))
    out["coverage"], out["width"], out["coverage_step1"] = {}, {}, {}
    for level in levels:
        lo, hi = scored[f"lower_{level}"], scored[f"upper_{level}"]
        inside = (scored["actual"] >= lo) & (scored["actual"] <= hi)
        out["coverage"][level] = float(inside.mean())
        out["width"][level] = float((hi - lo).mean())
        out["coverage_step1"][level] = float(inside[scored["step"] == 1].mean())
    return out


def rolling_mae(errors: pd.Series, window: int) -> pd.Series:
    """Trailing mean of absolute errors over `window` observations (defined from the first one on)."""
    return errors.abs().rolling(window, min_periods=1).mean()


def interval_levels(frame: pd.DataFrame) -> list[str]:
    """The interval levels the served forecasts hold (`80`, `95`, ...), from their `lower_<level>` columns."""
    return [c[len("lower_"):] for c in frame.columns if c.startswith("lower_")]


def replay_key(cfg: Config, version: str, series: pd.DataFrame) -> str:
    """What the replay depends on: the deployment and service settings, the bundle's version and the series."""
    serve = cfg.serve.model_dump(exclude={"host", "port", "db", "state"})
    text = json.dumps({"deployment": cfg.deployment.model_dump(), "serve": serve, "bundle": version,
                       "split": cfg.split.model_dump(), "rows": len(series),
                       "last": str(series.index[-1])}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_start(run, cfg: Config, n_rows: int) -> int:
    """First row of the test span: from the preprocessing stage's splits file, else from the split settings."""
    if run.splits_file.exists():
        return int(read_json(run.splits_file)["rows"]["test"][0])

    return split_bounds(n_rows, cfg.split.train, cfg.split.val, cfg.split.test).test[0]


def run_deployment(run, cfg: Config, echo=None) -> Deployment:
    """Export the run's bundle and replay its test span against a service per policy; write and return the results
    (reused when the settings, the bundle's version and the series are unchanged)."""
    try:
        bundle_path = ensure_bundle(run, echo)
    except BundleError as e:  # e.g. a series so short that the calibration cannot hold the interval levels
        return Deployment(pd.DataFrame(), {"meta": {"skipped": str(e)}, "policies": {}, "baselines": {}}, None,
                          skipped=str(e))
    bundle = load_bundle(bundle_path)
    series = read_series(run.require(run.series_file, "data (01_data)"))
    key = replay_key(cfg, bundle.version, series)
    if run.replay_file.exists() and run.deployment_metrics_file.exists():
        metrics = read_json(run.deployment_metrics_file)
        if metrics.get("meta", {}).get("key") == key:
            if echo:
                echo(f"Reusing the replay in {run.replay_file} (same settings, bundle {bundle.version} and series)")
            return Deployment(pd.read_parquet(run.replay_file), metrics, bundle_path, reused=True)

    d = cfg.deployment
    start = test_start(run, cfg, len(series))
    span = len(series) - start
    steps = span if d.steps <= 0 else min(d.steps, span)
    if steps < 2:
        raise DeploymentError(f"the test span of {run.series_file} has {span} rows; the replay needs at least 2")
    every = d.retrain_every if d.retrain_every > 0 else steps // 4 + 1  # three retrains, none at the very end
    frame = series[bundle.columns]
    history, stream = frame.iloc[:start], frame.iloc[start:start + steps]
    horizon, period = bundle.horizon, max(1, int(bundle.seasonal_period))
    if start < bundle.lookback:
        raise DeploymentError(f"only {start} rows precede the test span; the bundle's look-back is {bundle.lookback}")
    metrics_every = max(5, steps // 20)  # the service's own rolling metrics, read now and then (and at the end)

    parts, events, service_metrics, latency, stream_latency = [], [], {}, {}, {}
    services = {p: Service(bundle_path, run.deployment_dir / p, policy_settings(p, every, cfg.serve, bundle.config.serve),
                           seed=seed_history(history, bundle.freq)) for p in d.policies}
    try:
        for service in services.values():  # the services start side by side (start-up is mostly imports) and are
            service.launch()                # all ready before the first replay: a readiness deadline runs from its
        for service in services.values():  # service's launch, so waiting after the earlier policies' replays would
            service.wait_ready()            # declare a later service not ready without one poll
        for policy, service in services.items():  # one replay after the other (a retrain job has the CPU)
            # latency first, from the history's last window: no retrain job competes for the CPU then
            ms = time_latency(service, history.iloc[-bundle.lookback:], horizon, d.latency_requests)
            rows, ev, sm = replay_policy(service, policy, history, stream, horizon, metrics_every, echo)
            service.close()
            parts.append(pd.DataFrame(rows))
            events.extend(ev)
            service_metrics[policy] = sm
            latency[policy] = ms
            stream_latency[policy] = parts[-1].drop_duplicates("index")["latency_ms"].to_numpy()
    finally:
        for service in services.values():
            service.close()

    replay = pd.concat(parts, ignore_index=True)
    target = bundle.target
    observed = series[target].iloc[start:start + steps]
    replay["actual"] = replay["timestamp"].map(observed)
    metrics = summarise(replay, events, series[target].to_numpy(dtype=float), start, steps, horizon, period,
                        target_scale(bundle), rolling_window(steps, cfg), latency, stream_latency)
    metrics["service_metrics"] = service_metrics
    metrics["meta"] |= {"key": key, "bundle_version": bundle.version, "bundle": str(bundle_path), "target": target,
                        "units": cfg.data.units, "columns": list(bundle.columns), "lookback": bundle.lookback, "horizon": horizon,
                        "seasonal_period": period, "history_rows": start, "test_rows": span, "steps": steps,
                        "first": str(stream.index[0]), "last": str(stream.index[-1]), "retrain_every": every,
                        "policies": list(d.policies), "latency_requests": d.latency_requests,
                        "wait_for_jobs": True}
    latency_frame = pd.DataFrame([{"policy": p, "i": i, "latency_ms": v} for p, ms in latency.items()
                                  for i, v in enumerate(ms)])
    save_deployment(run, replay, metrics, latency_frame)
    return Deployment(replay, metrics, bundle_path)


def summarise(replay: pd.DataFrame, events: list[dict], values: np.ndarray, start: int, steps: int, horizon: int,
              period: int, scale: float, window: int, latency: dict, stream_latency: dict) -> dict:
    """The metrics JSON: per policy errors beside the baselines at the same origins, coverage, retrain events,
    latency percentiles; the baselines' and the policies' rolling step-1 MAE."""
    levels = interval_levels(replay)
    origins = np.arange(start - 1, start + steps - 1)  # forecast i is made from the rows up to start - 1 + i
    base = baseline_forecasts(values, origins, horizon, period)
    targets = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    valid = targets < start + steps
    actual = np.where(valid, values[np.minimum(targets, len(values) - 1)], np.nan)
    out = {"meta": {"levels": levels, "rolling_window": window, "scale": scale}, "policies": {}, "baselines": {},
           "rolling": {}}
    for name, f in base.items():
        out["baselines"][name] = error_table(f - actual, valid, scale)
        out["rolling"][name] = rolling_mae(pd.Series(f[:, 0] - actual[:, 0]), window).tolist()
    for policy, frame in replay.groupby("policy", sort=False):
        m = score_policy(frame, levels, scale, horizon)
        m["retrains"] = [e for e in events if e["policy"] == policy]
        m["versions"] = list(dict.fromkeys(frame["model_version"]))
        m["latency_ms"] = latency_summary(latency[policy])
        m["stream_latency_ms"] = latency_summary(stream_latency[policy])
        out["policies"][policy] = m
        s1 = frame[frame["step"] == 1].sort_values("index")
        out["rolling"][policy] = rolling_mae(s1["mean"] - s1["actual"], window).tolist()
    out["rolling"]["timestamp"] = [str(values_ts) for values_ts in
                                   replay[replay["step"] == 1].drop_duplicates("index").sort_values("index")["timestamp"]]
    return out


def save_deployment(run, replay: pd.DataFrame, metrics: dict, latency: pd.DataFrame) -> None:
    """Write the replay (Parquet) and the metrics (JSON) atomically; the metrics last (they mark the replay done)."""
    run.deployment_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.replay_file) as tmp:
        replay.to_parquet(tmp, index=False)
    with atomic_path(run.deployment_dir / "latency.parquet") as tmp:
        latency.to_parquet(tmp, index=False)
    atomic_write_json(run.deployment_metrics_file, metrics)


def latency_frame(run) -> pd.DataFrame:
    """The timed single-window forecasts of the last replay: policy, i, latency_ms."""
    return pd.read_parquet(run.deployment_dir / "latency.parquet")


__all__ = ["Deployment", "DeploymentError", "Service", "baseline_forecasts", "run_deployment"]
