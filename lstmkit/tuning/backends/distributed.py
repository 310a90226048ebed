"""Distributed tuning with Keras Tuner's own chief/worker mode.

Keras Tuner reads three environment variables: KERASTUNER_TUNER_ID (`chief` for the process that holds the
oracle, any other unique name for a worker), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (where the chief
listens). Every process runs the same `lstmkit tune --run-dir RUN`; the chief saves the trials and the best
configuration. `run_local` starts a chief and N workers on this machine, restarts a worker that dies (it picks
its unfinished trial up again), and returns when the chief has finished the search."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lstmkit.config import Config, ConfigError
from lstmkit.core.errors import TuningError
from lstmkit.core.net import free_port
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning.objective import search_fingerprint

ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def role() -> str | None:
    """`chief`, `worker`, or None when this process is not part of a distributed search."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def serve(oracle, poll: float = 0.2) -> None:
    """Serve the chief's oracle to the workers until the search is done.

    This is Keras Tuner's own chief (its OracleServicer over its gRPC protocol), started here rather than by
    `Tuner.search` only to end promptly: Keras Tuner 1.4 polls for the end every 20 seconds.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if not server.add_insecure_port(address):
        raise OSError(f"the tuning chief cannot listen on {address} (KERASTUNER_ORACLE_IP/PORT): is the port in use?")
    server.start()
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(poll)
    finally:
        server.stop(grace=2)


def tune_command(run: RunFolder) -> list[str]:
    """The command every process of the search runs."""
    return [sys.executable, "-m", "lstmkit.cli", "tune", "--run-dir", str(run.root)]


def _start(run: RunFolder, tuner_id: str, host: str, port: int) -> tuple[subprocess.Popen, Path]:
    """Start one process of the search with its Keras Tuner identity; output goes to tuning/logs/<id>.log."""
    log = run.tuning_dir / "logs" / f"{tuner_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": host,
           "KERASTUNER_ORACLE_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with open(log, "a") as out:
        return subprocess.Popen(tune_command(run), env=env, stdout=out, stderr=subprocess.STDOUT), log


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """Terminate processes, killing those that do not exit within the grace period."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def check_run_folder(run: RunFolder, cfg: Config) -> None:
    """ConfigError unless the run folder holds what worker processes read: this config, the data and the scaler."""
    for path, stage in ((run.series_file, "data (01_data)"), (run.scaler_file, "preprocessing (02_preprocessing)")):
        run.require(path, stage)
    if search_fingerprint(run.config()) != search_fingerprint(cfg):
        raise ConfigError(f"{run.config_file} differs from the configuration being tuned: worker processes read the "
                          f"run folder's, so open the run with its overrides (lstmkit.open_run) before tuning")


def run_local(run: RunFolder, cfg: Config, workers: int, host: str = "127.0.0.1", port: int | None = None,
              max_restarts: int = 3, poll: float = 0.5) -> None:
    """Search with a chief and `workers` worker processes on this machine; return when the chief is done."""
    check_run_folder(run, cfg)
    port = port or free_port(host)
    chief, chief_log = _start(run, "chief", host, port)
    workers_ = {f"tuner{i}": _start(run, f"tuner{i}", host, port) for i in range(workers)}
    restarts = dict.fromkeys(workers_, 0)
    try:
        while chief.poll() is None:
            for tuner_id, (proc, log) in list(workers_.items()):
                code = proc.poll()
                if code not in (None, 0):  # died mid-search: restart it; the chief hands it its unfinished trial
                    if restarts[tuner_id] >= max_restarts:
                        raise TuningError(f"tuning worker {tuner_id} died {max_restarts + 1} times (exit {code}); "
                                          f"see {log}:\n{_tail(log)}")
                    restarts[tuner_id] += 1
                    workers_[tuner_id] = _start(run, tuner_id, host, port)
            time.sleep(poll)
        if chief.returncode != 0:
            raise TuningError(f"the tuning chief failed (exit {chief.returncode}); see {chief_log}:\n{_tail(chief_log)}")
        for tuner_id, (proc, log) in workers_.items():
            if proc.wait(timeout=60) != 0:
                raise TuningError(f"tuning worker {tuner_id} exited with {proc.returncode} after the search; see {log}")
    finally:
        _stop([chief] + [p for p, _ in workers_.values()])
