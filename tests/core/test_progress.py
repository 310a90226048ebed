"""Live progress: the writer (a no-op unless asked), the renderer (terminal line or plain lines), and the stage hooks."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit.config import from_dict
from lstmkit.core import progress
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare


class FakeTTY(io.StringIO):
    """A terminal, as far as the renderer can tell."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def progress_file(tmp_path, monkeypatch) -> Path:
    """LSTMKIT_PROGRESS_FILE pointing into tmp_path, as the command line sets it for a stage."""
    path = tmp_path / "logs" / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


@pytest.fixture
def recorded(progress_file, monkeypatch) -> list[dict]:
    """Every state reported (as well as written to the file)."""
    states: list[dict] = []
    write = progress.report

    def record(stage, **fields):
        states.append({"stage": stage, **fields})
        write(stage, **fields)

    monkeypatch.setattr(progress, "report", record)
    return states


# ---------------------------------------------------------------- writer


def test_the_writer_does_nothing_without_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.report("training", epoch=1, epochs=3)
    progress.SearchProgress(10).update(1, 1, 0.5)
    assert not progress.enabled() and list(tmp_path.iterdir()) == []
    assert capsys.readouterr() == ("", "")


def test_the_writer_replaces_the_file_with_the_latest_state_and_prints_nothing(progress_file, capsys):
    progress.report("training", epoch=1, epochs=3, loss=np.float32(0.5))
    progress.report("training", epoch=2, epochs=3, loss=0.25, val_loss=0.3)
    state = json.loads(progress_file.read_text())
    assert state["stage"] == "training" and state["epoch"] == 2 and state["loss"] == 0.25 and state["val_loss"] == 0.3
    assert abs(state["time"] - time.time()) < 60
    assert [p.name for p in progress_file.parent.iterdir()] == ["progress.json"]  # no temporary file left behind
    assert capsys.readouterr() == ("", "")


def test_a_reader_never_sees_half_a_state(progress_file):
    progress.report("explain", windows=0, total=10_000, padding="x" * 20_000)
    stop, seen, bad = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                seen.append(json.loads(progress_file.read_text())["windows"])
            except ValueError as e:
                bad.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(1, 300):
        progress.report("explain", windows=i, total=10_000, padding="x" * 20_000)
    stop.set()
    thread.join()
    assert seen and not bad and seen == sorted(seen)


def test_search_progress_counts_trials_and_estimates_the_time_left(progress_file, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    search = progress.SearchProgress(total=10)
    search.update(done=2, running=1, best=0.4)  # resumed: 2 trials finished by an earlier run
    first = progress.read(progress_file)
    assert (first["trial"], first["trials"], first["done"], first["best"], first["eta"]) == (3, 10, 2, 0.4, None)
    now[0] += 60
    search.update(done=4, running=1, best=float("nan"))  # 2 trials here in 60 s: 30 s a trial, 6 left
    state = progress.read(progress_file)
    assert state["trial"] == 5 and state["best"] is None and state["eta"] == pytest.approx(180)
    assert progress.describe(state, now=now[0]) == "trial 5/10, 1m00s elapsed, ~3m00s left"
    capped = progress.SearchProgress(total=10, max_minutes=2)
    capped.update(done=0, running=1, best=None)
    now[0] += 30
    capped.update(done=1, running=1, best=0.3)
    assert progress.read(progress_file)["eta"] == pytest.approx(90)  # the budget ends before 9 more trials of 30 s


# ---------------------------------------------------------------- rendering


def test_describe_names_what_each_stage_is_doing():
    t = 1000.0
    tuning = {"stage": "tuning", "time": t, "trial": 3, "trials": 10, "done": 2, "running": 1, "best": 0.012345,
              "objective": "val_loss", "started": t - 65, "eta": 130}
    assert progress.describe(tuning, now=t + 10) == "trial 3/10, best val_loss 0.01235, 1m15s elapsed, ~2m00s left"
    hyperband = {**tuning, "trials": None, "eta": None}
    assert progress.describe(hyperband, now=t) == "trial 3, best val_loss 0.01235, 1m05s elapsed"
    chief = {**tuning, "running": 2, "done": 4}
    assert progress.describe(chief, now=t).startswith("4/10 trials done, 2 running, best val_loss")
    finished = {**tuning, "trial": 10, "done": 10, "running": 0, "eta": 0}
    assert progress.describe(finished, now=t + 30) == "10/10 trials done, best val_loss 0.01235, 1m05s elapsed"
    epoch = {"stage": "training", "phase": "training", "epoch": 3, "epochs": 20, "loss": 0.5, "val_loss": 0.25}
    assert progress.describe(epoch) == "epoch 3/20, loss 0.5, val_loss 0.25"
    assert progress.describe({**epoch, "phase": "refit"}).startswith("refit: epoch 3/20")
    within = {"stage": "training", "phase": "training", "epoch": 4, "epochs": 20, "batch": 120, "batches": 500, "loss": 0.5}
    assert progress.describe(within) == "epoch 4/20, batch 120/500, loss 0.5"
    assert progress.describe({"stage": "explain", "windows": 40, "total": 100}) == "windows explained 40/100"


def test_on_a_terminal_one_line_is_rewritten_and_cleared(progress_file):
    out = FakeTTY()
    renderer = progress.Renderer(progress_file, out, header="[4/9] training ...")
    renderer.poll()
    assert out.getvalue() == ""  # nothing reported yet
    progress.report("training", epoch=1, epochs=3, loss=0.5)
    renderer.poll()
    renderer.poll()  # unchanged: not written again
    progress.report("training", epoch=2, epochs=3, loss=0.4)
    renderer.poll()
    renderer.clear()
    assert out.getvalue() == ("\r[4/9] training ... epoch 1/3, loss 0.5\x1b[K"
                              "\r[4/9] training ... epoch 2/3, loss 0.4\x1b[K"
                              "\r[4/9] training ...\x1b[K")
    assert "\n" not in out.getvalue() and renderer.lines == 0


def test_elsewhere_plain_lines_at_milestones_and_at_most_one_a_second(progress_file):
    out, clock = io.StringIO(), Clock()
    renderer = progress.Renderer(progress_file, out, header="[6/9] explainability ...", clock=clock)
    for done in range(0, 101):  # a state every 1/8 s: a new 10% every 10 windows, i.e. every 1.25 s
        progress.report("explain", windows=done, total=100)
        renderer.poll()
        clock.now += 0.125
    lines = out.getvalue().split("\n")
    assert lines[0] == "" and lines[-1] == ""  # the header's line is ended first
    assert lines[1:-1] == [f"    windows explained {w}/100" for w in range(0, 101, 10)]
    out2, clock2 = io.StringIO(), Clock()
    fast = progress.Renderer(progress_file, out2, clock=clock2)
    for epoch in (1, 2, 3):  # epochs quicker than a second: throttled, the last one forced out at the end
        progress.report("training", epoch=epoch, epochs=3)
        fast.poll()
        clock2.now += 0.25
    fast.poll(force=True)
    fast.poll(force=True)  # no new milestone: no new line
    assert out2.getvalue() == "    epoch 1/3\n    epoch 3/3\n" and fast.lines == 2
    out3, clock3 = io.StringIO(), Clock()
    epochs = progress.Renderer(progress_file, out3, clock=clock3)
    for epoch in (1, 2):  # batches within an epoch add no line after the first one of the run
        for batch in (1, 50, None):
            progress.report("training", epoch=epoch, epochs=2, **({} if batch is None else {"batch": batch, "batches": 99}))
            epochs.poll()
            clock3.now += 5
    assert out3.getvalue() == "    epoch 1/2, batch 1/99\n    epoch 1/2\n    epoch 2/2\n"


def test_live_sets_the_variable_for_the_stage_renders_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    path, out = tmp_path / "progress.json", io.StringIO()
    path.write_text('{"stage": "training", "epoch": 9, "epochs": 9}')  # stale: from an earlier stage
    with progress.Live(path, out, header="[4/9] training ...", interval=0.05) as live:
        assert progress.enabled() and progress.ENV in __import__("os").environ
        progress.report("training", epoch=1, epochs=2, loss=1.0)
        deadline = time.monotonic() + 10
        while live.lines == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        progress.report("training", epoch=2, epochs=2, loss=0.5)
    assert not progress.enabled() and not path.exists()
    assert out.getvalue() == "\n    epoch 1/2, loss 1\n    epoch 2/2, loss 0.5\n"


# ---------------------------------------------------------------- hooks in the stages


def test_training_reports_each_epoch_with_its_losses(recorded, capsys):
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec

    cfg = from_dict({"seed": 5, "data": {"features": ["x1"], "length": 300}, "window": {"lookback": 6, "horizon": 1},
                     "model": {"units": 4, "batch_size": 64}, "training": {"epochs": 2, "patience": 5, "verbose": 0},
                     "tuning": {"strategy": "none"}})
    prepared = prepare(make_synthetic(300, 0.3, seed=5)[0][["x1", "target"]], cfg)
    history = fit_forecaster(prepared, ModelSpec.from_config(cfg, values={"lookback": 6}), cfg).history_
    ends = [s for s in recorded if "batch" not in s]
    assert [(s["stage"], s["epoch"], s["epochs"]) for s in ends] == [("training", 1, 2), ("training", 2, 2)]
    batches = [s for s in recorded if "batch" in s]  # within an epoch, at most every half second: the first batch
    assert batches and batches[0]["epoch"] == 1 and batches[0]["batch"] == 1
    assert recorded[-1]["loss"] == pytest.approx(history["loss"].iloc[-1])
    assert recorded[-1]["val_loss"] == pytest.approx(history["val_loss"].iloc[-1])
    assert capsys.readouterr().out == ""  # verbose 0: nothing printed, the progress goes to the file only


@pytest.mark.parametrize("strategy", ["random", "optuna", "hyperband"])
def test_tuning_reports_trial_counts_and_the_best_so_far(strategy, recorded, tmp_path):
    from lstmkit.runs.folder import RunFolder
    from lstmkit.tuning.search import tune
    from tests.tuning.test_tuning import tiny_config

    cfg = tiny_config(strategy)
    _, table = tune(prepare(make_synthetic(400, 0.3, seed=3)[0][["x1", "target"]], cfg), cfg, RunFolder(tmp_path / "r"))
    states = [s for s in recorded if s["stage"] == "tuning"]
    assert states and all(s["trials"] == (None if strategy == "hyperband" else 3) for s in states)
    dones = [s["done"] for s in states]
    assert dones == sorted(dones) and dones[0] == 0 and dones[-1] == len(table)
    assert {s["trial"] for s in states} >= set(range(1, min(len(table), 3) + 1))
    completed = table[table["status"] == "COMPLETED"]["val_loss"]
    assert states[-1]["best"] == pytest.approx(completed.min())
    bests = [s["best"] for s in states if s["best"] is not None]
    assert bests == sorted(bests, reverse=True)  # the best so far only improves


def test_integrated_gradients_reports_windows_done(recorded):
    import keras

    from lstmkit.explain.integrated_gradients import integrated_gradients

    model = keras.Sequential([keras.Input((5, 2)), keras.layers.Flatten(), keras.layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(50, 5, 2)).astype(np.float32)
    integrated_gradients(model, x, steps=8, batch_size=64)  # 400 path points, 64 per call: 7 calls
    windows = [s["windows"] for s in recorded]
    assert len(windows) == 7 and windows == sorted(windows) and windows[-1] == 50
    assert all(s["stage"] == "explain" and s["total"] == 50 for s in recorded)
    recorded.clear()
    integrated_gradients(model, x, baseline="noise", samples=2, steps=8, batch_size=64)
    assert [s["windows"] for s in recorded][-1] == 50 and max(s["windows"] for s in recorded) == 50
