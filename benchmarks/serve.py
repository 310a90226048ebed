"""Service load and durability: `lstmkit serve` on the loopback under 1, 10 and 50 concurrent clients, and kill -9.

A bundle of a one-layer LSTM (64 units by default, look-back 336, ETTh2's OT target, horizon of the profile) is
trained briefly (`--epochs`, `--steps-per-epoch`: latency does not depend on accuracy) and written with
`write_bundle`; `lstmkit serve` then runs as a subprocess on 127.0.0.1 (lstmkit.stages.deployment.Service: free port,
generated API key, its own SQLite database). For each number of concurrent clients (asyncio tasks sharing one httpx
client with as many connections), the script times

* single-window requests: `POST /v1/forecast` with the look-back window in the body (the service's batcher may join
  concurrent ones into one model call);
* batched requests: `POST /v1/forecast/batch` with `--batch` windows each,

and prints forecasts per second (windows answered / wall time), the p50/p99 latency of a request and the service
process's CPU time per forecast (user + system from /proc, the server's own cost whatever the client costs). The load
comes from one of two clients, or both in turn (`--client`, default: wrk when installed, then httpx):

* `wrk` (Debian's package; C, one thread, a Lua script POSTing a fixed body over keep-alive connections, for
  `--duration` seconds): a lean load generator that leaves the cores to the service;
* `httpx` (asyncio tasks sharing one AsyncClient, `--requests` requests): a Python client, as a user's program would
  be, whose own CPU (building, sending and parsing each request) competes with the service on the same cores.

It also times a
bare in-process `model(x)` call of the same network on one window, and prints the ratio of the service's single
forecast time (p50 with one client) to it.

The kill -9 test restarts the service `--kills` times on one database: each time a client appends observations one
at a time (each a separate request) and records the ones acknowledged (200), the service is killed with SIGKILL after
a random delay, and every acknowledged observation is looked up in the database after the restart. Target: 0 lost.
Run from the repository root:

    python benchmarks/serve.py [--config configs/etth2.yaml] [--units 64] [--client wrk,httpx] [--duration 10]
                               [--requests 400] [--batch 32] [--kills 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "configs" / "etth2.yaml"), help="profile giving the data (default: ETTh2)")
    p.add_argument("--units", type=int, default=64, help="LSTM units, one layer (default 64)")
    p.add_argument("--lookback", type=int, default=336, help="look-back (default 336)")
    p.add_argument("--horizon", type=int, default=0, help="horizon (default 0: the profile's, 96 for ETTh2)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs of the benchmarked model (default 1)")
    p.add_argument("--steps-per-epoch", type=int, default=20, help="batches per epoch (default 20)")
    p.add_argument("--bundle", default="", help="use this bundle instead of training one")
    p.add_argument("--clients", default="1,10,50", help="concurrent client counts (default 1,10,50)")
    p.add_argument("--client", default="", help="load generators, comma-separated: wrk, httpx (default: wrk,httpx "
                   "when wrk is installed, else httpx)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per wrk run (default 10)")
    p.add_argument("--requests", type=int, default=400, help="single-window requests per client count (default 400)")
    p.add_argument("--batch", type=int, default=32, help="windows per batched request (default 32)")
    p.add_argument("--batch-requests", type=int, default=60, help="batched requests per client count (default 60)")
    p.add_argument("--bare-calls", type=int, default=200, help="timed bare model(x) calls (default 200)")
    p.add_argument("--kills", type=int, default=20, help="kill -9 restarts (default 20; 0 = skip)")
    return p.parse_args(argv)


def build_bundle(args: argparse.Namespace, out: Path):
    """Train the benchmarked LSTM briefly on the profile's series, write its bundle to `out`; (bundle path, series)."""
    from lstmkit.bundle.format import validation_errors, write_bundle
    from lstmkit.config import from_dict, load_config
    from lstmkit.core.timeindex import infer_freq
    from lstmkit.data.seasonality import resolve_config
    from lstmkit.data.series import load_series
    from lstmkit.data.windows import prepare
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec

    cfg = load_config(args.config)
    cfg = from_dict(cfg.to_dict(), {"model.layers": 1, "model.units": args.units, "window.lookback": args.lookback,
                                    "training.epochs": args.epochs, "training.steps_per_epoch": args.steps_per_epoch,
                                    "training.verbose": 0} | ({"window.horizon": args.horizon} if args.horizon else {}))
    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    prepared = prepare(frame, cfg)
    forecaster = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg, seed=cfg.seed)
    freq = frame.index.freqstr if frame.index.freq is not None else infer_freq(frame.index)
    return write_bundle(out, forecaster, prepared.scaler, prepared.target_scaler, prepared.columns, prepared.target, freq,
                        frame.index[prepared.bounds.train[1] - 1], cfg, {"source": "val"},
                        validation_errors(forecaster, prepared), {}), frame


def bare_call_ms(bundle, window: np.ndarray, calls: int) -> tuple[float, float]:
    """Median milliseconds of a bare in-process call of the bundle's network on one scaled window (1, lookback,
    channels): eager `network(x)`, and the same call compiled once with tf.function (what a tuned server would run)."""
    import tensorflow as tf

    net = bundle.forecaster.network
    x = tf.constant(bundle.scaler.transform(window)[None].astype("float32"))
    compiled = tf.function(lambda v: net(v, training=False))
    out = []
    for call in (lambda: net(x, training=False), lambda: compiled(x)):
        for _ in range(5):
            call()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            np.asarray(call())
            times.append((time.perf_counter() - t0) * 1000)
        out.append(float(np.median(times)))
    return out[0], out[1]


async def load(url: str, key: str, body: dict, path: str, clients: int, total: int,
               pid: int) -> tuple[np.ndarray, float, float]:
    """Send `total` copies of a request from `clients` concurrent tasks (after as many as a warm-up); per-request
    milliseconds, the wall time and the CPU seconds process `pid` (the service) used meanwhile."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    remaining = [total]
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, limits=limits, timeout=120) as client:
        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                t0 = time.perf_counter()
                r = await client.post(path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"POST {path} answered {r.status_code}: {r.text[:300]}")

        await asyncio.gather(*[worker() for _ in range(min(clients, 3))])  # warm-up of the connections
        latencies.clear()
        remaining[0] = total
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0
    return np.array(latencies), wall, cpu


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK-JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, \\"seconds\\": %%f, "
    .. "\\"p50\\": %%f, \\"p90\\": %%f, \\"p99\\": %%f}\\n", summary.requests, e.connect + e.read + e.write + e.timeout,
    e.status, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000))
end
"""


def wrk_load(url: str, key: str, body: dict, path: str, clients: int, seconds: float, work: Path) -> dict:
    """`clients` keep-alive connections from one wrk thread POSTing `body` for `seconds`: requests, wall seconds and
    p50/p90/p99 ms (wrk's histogram); RuntimeError on any error or non-200 answer."""
    body_file = work / f"body-{abs(hash(path))}.json"
    body_file.write_text(json.dumps(body))
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT % {"key": key, "body": body_file})
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "120s", "-s", str(script), url + path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"WRK-JSON (\{.*\})", out)
    if m is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    res = json.loads(m.group(1))
    if res["errors"] or res["non2xx"]:
        raise RuntimeError(f"wrk: {res['errors']} socket errors, {res['non2xx']} non-2xx answers:\n{out}")
    return res


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_test(bundle_path: Path, frame, columns: list[str], kills: int, state: Path) -> dict:
    """`kills` SIGKILLs of a service under a stream of single-observation appends on one database: acknowledged
    observations, and how many of them are missing after the restarts."""
    import httpx

    from lstmkit.service.storage import Storage
    from lstmkit.stages.deployment import Service

    series = "kill"
    values = frame[columns].to_numpy(dtype=float)
    index = frame.index
    acked: set = set()
    position = 0
    rng = random.Random(0)
    service = Service(bundle_path, state)
    service.start()  # the first start empties the state folder; the restarts keep it
    for k in range(kills):
        stop = threading.Event()

        def append_stream(stop: threading.Event = stop) -> None:
            nonlocal position
            with httpx.Client(base_url=service.url, headers={"X-API-Key": service.api_key}, timeout=10) as c:
                while not stop.is_set() and position < len(index):
                    body = {"timestamps": [index[position].isoformat()],
                            "columns": {col: [float(values[position, j])] for j, col in enumerate(columns)}}
                    try:
                        r = c.post(f"/v1/series/{series}/observations", json=body)
                    except httpx.HTTPError:
                        return  # killed: this one was never acknowledged
                    if r.status_code == 200:
                        acked.add(index[position])
                        position += 1
                    else:
                        raise RuntimeError(f"append answered {r.status_code}: {r.text[:300]}")

        thread = threading.Thread(target=append_stream)
        thread.start()
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(service.proc.pid, signal.SIGKILL)
        service.proc.wait()
        stop.set()
        thread.join()
        if service.client is not None:
            service.client.close()
        storage = Storage(service.db_url)
        stored = set(storage.history(series).index)
        storage.engine.dispose()
        position = len(stored)  # resend from the first observation not stored (an unacknowledged one may be stored)
        if k < kills - 1:
            service.start(fresh=False)
    lost = len(acked - stored)
    return {"kills": kills, "acknowledged": len(acked), "stored": len(stored), "lost": lost}


def main(argv: list[str] | None = None) -> int:
    """Build or load the bundle, serve it, run the load levels and the kill test, print the tables."""
    args = parse_args(argv)
    import_tensorflow()
    from lstmkit.bundle.runtime import load_bundle
    from lstmkit.stages.deployment import Service, latency_summary

    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="lstmkit-serve-bench-"))
    if args.bundle:
        bundle_path = Path(args.bundle)
        from lstmkit.config import load_config
        from lstmkit.data.series import load_series

        frame = load_series(load_config(args.config)).frame
    else:
        t0 = time.perf_counter()
        bundle_path, frame = build_bundle(args, work / "bundle")
        print(f"bundle trained and written in {time.perf_counter() - t0:.0f} s: {bundle_path}", file=sys.stderr)
    bundle = load_bundle(bundle_path)
    window = frame[bundle.columns].iloc[-bundle.lookback:]
    eager, compiled = bare_call_ms(bundle, window.to_numpy(dtype=float), args.bare_calls)
    single = {"window": {"timestamps": [t.isoformat() for t in window.index],
                         "columns": {c: [float(v) for v in window[c]] for c in bundle.columns}},
              "horizon": bundle.horizon}
    batch = {"requests": [single] * args.batch}
    clients_used = [c.strip() for c in args.client.split(",") if c.strip()] or (
        ["wrk", "httpx"] if shutil.which("wrk") else ["httpx"])
    if "wrk" in clients_used and not shutil.which("wrk"):
        raise SystemExit("--client wrk: wrk is not installed (Debian: apt-get install wrk)")
    rows = []
    with Service(bundle_path, work / "service") as service:
        pid = service.proc.pid
        for client in clients_used:
            for clients in [int(c) for c in args.clients.split(",")]:
                for kind, body, path, total, per in (("single", single, "/v1/forecast", args.requests, 1),
                                                     (f"batch of {args.batch}", batch, "/v1/forecast/batch",
                                                      args.batch_requests, args.batch)):
                    if client == "wrk":
                        wrk_load(service.url, service.api_key, body, path, clients, 1, work)  # warm-up
                        cpu0 = cpu_seconds(pid)
                        r = wrk_load(service.url, service.api_key, body, path, clients, args.duration, work)
                        cpu = cpu_seconds(pid) - cpu0
                        total, wall, s = r["requests"], r["seconds"], r
                    else:
                        ms, wall, cpu = asyncio.run(load(service.url, service.api_key, body, path, clients, total, pid))
                        s = latency_summary(ms)
                    rate = total * per / wall
                    cpu_ms = cpu * 1000 / (total * per)
                    rows.append([client, kind, clients, total, f"{rate:.0f}", f"{s['p50']:.1f}", f"{s['p90']:.1f}",
                                 f"{s['p99']:.1f}", f"{cpu_ms:.2f}"])
                    print(f"  {client:>5} {kind:>12} x {clients:>2} clients: {rate:.0f} forecasts/s, p50 {s['p50']:.1f} "
                          f"ms, p99 {s['p99']:.1f} ms, service CPU {cpu_ms:.2f} ms/forecast", file=sys.stderr)
    print(f"Bundle {bundle.version}: LSTM 1x{args.units}, look-back {bundle.lookback}, horizon {bundle.horizon}, "
          f"{len(bundle.columns)} channel(s); loopback, {os.cpu_count()} cores")
    print(f"load average before the run: {load_before}; after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(format_table([("client", "request", "clients", "requests", "forecasts/s", "p50 ms", "p90 ms", "p99 ms",
                         "service CPU ms/forecast"), *[tuple(map(str, r)) for r in rows]]))
    single_p50 = float(rows[0][5])
    print(f"bare in-process call on one window (median of {args.bare_calls}): model(x) eager {eager:.2f} ms, compiled "
          f"(tf.function) {compiled:.2f} ms; service single forecast p50 with 1 client: {single_p50:.1f} ms = "
          f"{single_p50 / eager:.2f}x the eager call, {single_p50 / compiled:.1f}x the compiled one")
    if args.kills:
        t0 = time.perf_counter()
        k = kill_test(bundle_path, frame, bundle.columns, args.kills, work / "kill")
        print(f"kill -9: {k['kills']} restarts in {time.perf_counter() - t0:.0f} s, {k['acknowledged']} acknowledged "
              f"observations, {k['stored']} stored, {k['lost']} acknowledged observations lost (target 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
