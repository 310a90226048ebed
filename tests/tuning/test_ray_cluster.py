"""Ray Tune searches (pbt/asha) with real processes: a head and a second node on 127.0.0.1 share the trials, a node
killed mid-trial loses no trial (retried from its checkpoint), and a search killed with SIGKILL resumes without
retraining the trials it had finished (`lstmkit tune` on the quick profile's run folder, with its trials table, lineage
and rungs figure).

The Ray processes run in their own process sessions with their own temp folders and are stopped by signalling those
sessions (never `ray stop`, which would stop every Ray instance on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lstmkit.report.plots.tuning import rungs
from tests.paths import REPO

pytest.importorskip("ray.tune")

RAY = str(Path(sys.executable).with_name("ray"))
LSTMKIT = [sys.executable, "-m", "lstmkit.cli"]
# Token authentication off for every Ray process here: `ray start --head` turns it on by itself when ~/.ray/auth_token
# exists (left by another Ray), and drivers would then be refused; a loaded machine starts the node agents slowly.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_agent_register_timeout_ms": "120000"}
# The head's GCS declares a node dead after 3 missed health checks 0.5 s apart (Ray's default: 5 x 3 s).
FAST_HEALTH_CHECKS = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "500",
                      "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}
# Lists the cluster's alive nodes once there are `n`, as JSON {node id: "head" | "worker"}.
NODES = ("import json, sys, time, ray\n"
         "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
         "deadline = time.monotonic() + 90\n"
         "while True:\n"
         "    alive = [n for n in ray.nodes() if n['Alive']]\n"
         "    if len(alive) >= int(sys.argv[2]) or time.monotonic() > deadline:\n"
         "        break\n"
         "    time.sleep(0.5)\n"
         "print(json.dumps({n['NodeID']: 'head' if 'node:__internal_head__' in n['Resources'] else 'worker' "
         "for n in alive}))\n")


def tune_args(run: Path, *settings: str) -> list[str]:
    """`lstmkit tune` of a run folder with `--set` overrides (a tiny single-fold search)."""
    sets = ["tuning.cv_folds=1", *settings]
    return [*LSTMKIT, "tune", "--run-dir", str(run), *[a for s in sets for a in ("--set", s)]]


# Cluster searches train with batches of 8 (epochs of ~100 steps): a trial outlasts the start of the worker node's
# trial process, which Ray Tune would otherwise hand over to the head's idle process (actors are reused).
SLOW_EPOCHS = "tuning.space.batch_size=[8]"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True and everything in its process group; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def kill_leftovers(marker: str) -> list[int]:
    """SIGKILL every process whose command line names `marker` (this test's own Ray temp folder); their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def results(run: Path) -> pd.DataFrame:
    """Every line of the search's results log (tuning/<project>.results.jsonl), duplicates kept; a torn line skipped."""
    logs = list((run / "tuning").glob("*.results.jsonl"))
    records = []
    for line in (logs[0].read_text().splitlines() if logs else []):
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return pd.DataFrame(records, columns=["trial", "epoch", "node", "val_loss"])


def trials(run: Path) -> pd.DataFrame:
    """The search's trials table (tuning/trials.csv)."""
    return pd.read_csv(run / "tuning" / "trials.csv", index_col="trial")


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory) -> Path:
    """A quick-profile run folder whose data and preprocessing stages are done (copied by each test)."""
    root = tmp_path_factory.mktemp("ray") / "run"
    done = subprocess.run([*LSTMKIT, "run", "--config", "configs/quick.yaml", "--run-dir", str(root), "--to",
                           "preprocessing", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture
def run(prepared_run, tmp_path) -> Path:
    """This test's own copy of the prepared run folder."""
    return Path(shutil.copytree(prepared_run, tmp_path / "run"))


@pytest.fixture
def ray_temp() -> Iterator[str]:
    """A short private Ray temp folder (Ray's socket paths are limited to ~100 characters); its processes are killed
    and the folder removed after the test."""
    temp = tempfile.mkdtemp(prefix="lkr-", dir="/tmp")
    yield temp
    kill_leftovers(temp)
    shutil.rmtree(temp, ignore_errors=True)


class Cluster:
    """A Ray head and one worker node on 127.0.0.1 (1 CPU each), each a `ray start --block` in its own session."""

    def __init__(self, temp: str, logs: Path):
        self.port, self.temp, self.logs = free_port(), temp, logs
        self.address = f"127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.nodes: dict[str, str] = {}

    def _start(self, name: str, *args: str) -> None:
        """`ray start ARGS --block` as its own session, output to logs/<name>.log."""
        common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--block", "--disable-usage-stats"]
        with open(self.logs / f"{name}.log", "w") as out:
            self.procs[name] = subprocess.Popen([RAY, "start", *args, *common], cwd=REPO, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True,
                                                env=os.environ | RAY_ENV | FAST_HEALTH_CHECKS)

    def alive_nodes(self, n: int) -> dict[str, str]:
        """The alive nodes ({id: head/worker}) once there are `n` (or after 90 s)."""
        done = subprocess.run([sys.executable, "-c", NODES, self.address, str(n)], capture_output=True, text=True,
                              timeout=150, env=os.environ | RAY_ENV | {"RAY_TMPDIR": self.temp})
        assert done.returncode == 0, done.stderr[-3000:] + self.log_tail()
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        """Start the head, then the worker node; wait until both are alive."""
        self._start("head", "--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}")
        self._start("worker", f"--address={self.address}")
        self.nodes = self.alive_nodes(2)
        assert sorted(self.nodes.values()) == ["head", "worker"], self.nodes

    def node(self, role: str) -> str:
        """The Ray node id of the head or the worker node."""
        return next(k for k, v in self.nodes.items() if v == role)

    def log_tail(self) -> str:
        """The last lines of the `ray start` outputs (for failure messages)."""
        return "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in self.logs.glob("*.log"))

    def stop(self) -> None:
        """Kill both sessions (worker first) and anything left that runs out of this cluster's temp folder."""
        for name in ("worker", "head"):
            if name in self.procs:
                kill_session(self.procs[name])
        kill_leftovers(self.temp)


@pytest.fixture
def cluster(ray_temp, tmp_path) -> Iterator[Cluster]:
    """A started two-node loopback cluster, stopped after the test whatever happened."""
    logs = tmp_path / "ray-logs"
    logs.mkdir()
    c = Cluster(ray_temp, logs)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait for a search process to end and check it succeeded (its output in the failure message)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        pytest.fail(f"the search did not end within {timeout:.0f} s:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, log.read_text()[-4000:]


def start_tune(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """`lstmkit tune` as its own process session, output to `log`."""
    with open(log, "a") as out:
        return subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=os.environ | RAY_ENV | {"LSTMKIT_TRACEBACK": "1"} | (env or {}))


def all_finished(table: pd.DataFrame, n: int) -> None:
    """The trials table has trials 0..n-1, every one COMPLETED or PRUNED, each with a validation loss."""
    assert list(table.index) == list(range(n)), table
    assert table["status"].isin(["COMPLETED", "PRUNED"]).all(), table[["status", "message"]] if "message" in table else table
    assert table["val_loss"].notna().all(), table


def test_two_nodes_on_the_loopback_share_the_trials(cluster, run, tmp_path):
    """An ASHA search joined to a head + worker cluster (`--ray-address`): every trial ends and both nodes train."""
    log = tmp_path / "tune.log"
    proc = start_tune([*tune_args(run, "tuning.strategy=asha", "tuning.max_trials=4", "tuning.epochs=3", SLOW_EPOCHS),
                       "--ray-address", cluster.address], log)
    finish(proc, log, 240)
    assert "on the Ray cluster at " + cluster.address in log.read_text()
    all_finished(trials(run), 4)
    epochs = results(run)
    assert set(epochs["trial"]) == {0, 1, 2, 3}
    assert set(epochs["node"]) == set(cluster.nodes), (epochs, cluster.nodes)  # the head and the worker node
    assert (run / "tuning" / "best_hyperparameters.json").is_file()


@pytest.mark.parametrize("strategy", ["asha", "pbt"])
def test_a_node_killed_mid_trial_loses_no_trial(strategy, cluster, run, tmp_path):
    """SIGKILL of the worker node while it trains a trial: the trial is retried from its last checkpoint on the head
    (FailureConfig), no trial fails, and the killed trial's later epochs are trained."""
    epochs = 3 if strategy == "asha" else 4  # asha: rung at epoch 1; pbt: exploit/explore after epoch 2
    log = tmp_path / "tune.log"
    proc = start_tune([*tune_args(run, f"tuning.strategy={strategy}", "tuning.max_trials=4", f"tuning.epochs={epochs}",
                                  "tuning.perturbation_interval=2", SLOW_EPOCHS), "--ray-address", cluster.address], log)
    worker, head = cluster.node("worker"), cluster.node("head")
    killed = False
    deadline = time.monotonic() + 180
    try:
        while not killed:  # a trial on the worker node reported an epoch before its last: it trains on there
            assert proc.poll() is None and time.monotonic() < deadline, \
                f"no trial was caught mid-trial on the worker node:\n{log.read_text()[-3000:]}"
            last = results(run).groupby("trial").tail(1)
            if ((last["node"] == worker) & (last["epoch"] < epochs)).any():
                kill_session(cluster.procs["worker"])
                killed = True
            else:
                time.sleep(0.05)
    finally:
        if not killed:
            kill_session(proc)
    finish(proc, log, 240)
    table = trials(run)
    all_finished(table, 4)
    if strategy == "pbt":  # PBT stops no trial early
        assert (table["status"] == "COMPLETED").all(), table
    text = log.read_text()
    assert "has been marked dead" in text or "node has died" in text, text[-3000:]  # Ray saw the node die
    seen = results(run)
    # the trials that trained on the worker node and went on on the head: retried from their last checkpoint there
    moved = [t for t, mine in seen.groupby("trial") if (mine["node"] == worker).any() and (mine["node"] == head).any()]
    if strategy == "pbt":  # the trial caught mid-way cannot have been stopped early: it must have moved
        assert moved, seen
    for t in moved:
        mine = seen[seen["trial"] == t]
        before, after = mine[mine["node"] == worker], mine[mine["node"] == head]
        assert int(after["epoch"].min()) == int(before["epoch"].max()) + 1, mine  # from its last checkpoint
        assert sorted(mine["epoch"]) == list(range(1, int(mine["epoch"].max()) + 1)), mine  # no epoch trained twice


def test_a_search_killed_with_sigkill_resumes_without_retraining_finished_trials(run, ray_temp, tmp_path):
    """SIGKILL of `lstmkit tune` (local Ray) once a trial has finished and another has started; the rerun of the same
    command finishes the search, and the trials finished before the kill are not trained again."""
    epochs, n = 3, 4
    args = tune_args(run, "tuning.strategy=asha", f"tuning.max_trials={n}", f"tuning.epochs={epochs}")
    env = {"RAY_TMPDIR": ray_temp}  # the local Ray's processes name this folder: leftovers can be found
    log = tmp_path / "tune.log"
    proc = start_tune(args, log, env)
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, \
                f"the search ended before it could be killed:\n{log.read_text()[-3000:]}"
            seen = results(run)
            done = set(seen.loc[seen["epoch"] == epochs, "trial"])
            if done and set(seen["trial"]) - done:
                break
            time.sleep(0.05)
    finally:
        kill_session(proc)
    leftovers = kill_leftovers(ray_temp)  # Ray's own processes of the killed search, if any outlived it
    before = results(run)
    finished = set(before.loc[before["epoch"] == epochs, "trial"])
    assert not (run / "tuning" / "trials.csv").exists()  # killed before the end

    proc = start_tune(args, log, env)
    finish(proc, log, 240)
    table = trials(run)
    all_finished(table, n)
    after = results(run)
    assert len(after) >= len(before) and after.iloc[: len(before)].equals(before)  # the log was appended to
    for t in finished:  # each epoch of a trial finished before the kill was trained once: not again after the resume
        assert sorted(after.loc[after["trial"] == t, "epoch"]) == list(range(1, epochs + 1)), (t, after)
    assert set(after["trial"]) == set(range(n))
    best = json.loads((run / "tuning" / "best_hyperparameters.json").read_text())
    completed = table[table["status"] == "COMPLETED"]
    assert best["val_loss"] == pytest.approx(completed["val_loss"].min()) and best["trial"] == completed["val_loss"].idxmin()
    assert best["strategy"] == "asha" and "schedule" not in best
    text = log.read_text()  # the command's own lines: where the search ran, and its result
    assert "asha search on a local Ray instance" in text and f"{n} trials; best val_loss" in text, text[-3000:]
    assert list(table.columns[-4:]) == ["val_loss", "best_epoch", "seconds", "status"] and "architecture" in table
    lineage = pd.read_csv(run / "tuning" / "lineage.csv")  # the rungs figure's data: every trial's loss by epoch
    assert set(lineage["trial"]) == set(table.index) and lineage["copied_from"].isna().all()  # ASHA never copies
    last = lineage.groupby("trial")["epoch"].max()
    assert (last[table["status"] == "COMPLETED"] == epochs).all() and (last[table["status"] == "PRUNED"] < epochs).all()
    fig = rungs(lineage, best_trial=best["trial"])
    assert len(fig.axes[0].get_lines()) >= len(table)  # one line per trial
    print(f"killed with trials {sorted(finished)} finished; leftover Ray processes killed: {len(leftovers)}")
