"""Figures of the tuning chapter: drawn from small trials tables, including degenerate ones."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lstmkit.config import from_dict  # noqa: E402
from lstmkit.report import plots  # noqa: E402
from lstmkit.tuning.space import Param, SearchSpace, search_space  # noqa: E402

DEFAULT = search_space(from_dict({}))
CUSTOM = SearchSpace(params=(Param("learning_rate", float, min=1e-4, max=1e-1, log=True),
                             Param("lookback", int, choices=(24, 48, 96)),
                             Param("optimizer", str, choices=("adam", "sgd"))), fixed={})
SINGLE = SearchSpace(params=(Param("units", int, min=32, max=160, step=32),), fixed={})
STATUSES = ["COMPLETED", "COMPLETED", "PRUNED", "COMPLETED", "FAILED", "COMPLETED", "COMPLETED", "PRUNED"]


def make_table(space: SearchSpace, n: int = 8, folds: int = 0, seed: int = 0) -> pd.DataFrame:
    """A trials table over `space` (statuses cycling through STATUSES; failed trials have no loss), via CSV."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n):
        row = {"trial": t}
        for p in space.params:
            row[p.name] = (p.choices[t % len(p.choices)] if not p.is_range else
                           float(10 ** rng.uniform(np.log10(p.min), np.log10(p.max))) if p.log else
                           p.type(p.min + (t * (p.step or 1)) % (p.max - p.min + 1e-9)))
        status = STATUSES[t % len(STATUSES)]
        loss = 0.1 + rng.uniform(0, 1) if status != "FAILED" else np.nan
        row |= {"val_loss": loss, "best_epoch": 2, "seconds": 1.5}
        row |= {f"fold_{k}": loss * (1.5 - 0.2 * k) for k in range(1, folds + 1)}
        rows.append(row | {"status": status})
    return pd.DataFrame(rows).set_index("trial")


def through_csv(table: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """The table as the notebooks read it back from the run folder."""
    table.to_csv(tmp_path / "trials.csv")
    return pd.read_csv(tmp_path / "trials.csv", index_col="trial")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def check(fig: plt.Figure, png) -> None:
    """The PNG was written and every axis says what it shows."""
    assert png.exists() and png.stat().st_size > 0
    for ax in fig.axes:
        assert ax.get_title() or ax.get_xlabel() or ax.get_ylabel()


def completed(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["status"] == "COMPLETED") & table["val_loss"].notna()]


def test_trials_best_so_far_is_non_increasing_and_ends_at_the_minimum(tmp_path):
    table = through_csv(make_table(DEFAULT, n=16), tmp_path)
    fig = plots.trials(table, path=tmp_path / "trials.png")
    check(fig, tmp_path / "trials.png")
    ax, = fig.axes
    assert ax.get_title() == "Objective by trial" and ax.get_yscale() == "log"
    best, = [line for line in ax.lines if line.get_gid() == "best_so_far"]
    y = best.get_ydata()
    assert np.all(np.diff(y) <= 0) and y[-1] == pytest.approx(completed(table)["val_loss"].min())
    assert any("failed" in text.get_text() for text in ax.get_legend().get_texts())


@pytest.mark.parametrize("space", [DEFAULT, CUSTOM, SINGLE], ids=["default", "custom", "single"])
def test_param_effects_has_one_panel_per_parameter_and_only_completed_trials(space, tmp_path):
    table = through_csv(make_table(space, n=16), tmp_path)
    fig = plots.param_effects(table, space, path=tmp_path / "effects.png")
    check(fig, tmp_path / "effects.png")
    assert [ax.get_title() for ax in fig.axes] == space.names
    assert fig._suptitle.get_text() == "Effect of each hyperparameter on the objective"
    losses = sorted(completed(table)["val_loss"])
    for ax in fig.axes:
        points, star = ax.collections[0], ax.collections[-1]
        assert sorted(points.get_offsets()[:, 1]) == pytest.approx(losses)  # no pruned or failed trial drawn
        assert star.get_offsets()[0, 1] == pytest.approx(losses[0])
    learning_rate = [ax for ax in fig.axes if ax.get_title() == "learning_rate"]
    assert all(ax.get_xscale() == "log" for ax in learning_rate)


@pytest.mark.parametrize("space", [DEFAULT, CUSTOM, SINGLE], ids=["default", "custom", "single"])
@pytest.mark.parametrize("n", [16, 1, 2])
def test_parallel_coordinates_draws_one_line_per_completed_trial_best_last(space, n, tmp_path):
    table = through_csv(make_table(space, n=n), tmp_path)
    fig = plots.parallel_coordinates(table, space, path=tmp_path / "pc.png")
    check(fig, tmp_path / "pc.png")
    ax = fig.axes[0]
    done = completed(table)
    assert len(ax.lines) == len(done)
    assert len(ax.get_xticks()) == len(space.names) + 1
    for line in ax.lines:
        y = line.get_ydata()
        assert len(y) == len(space.names) + 1 and np.all((y >= 0) & (y <= 1))
    last = ax.lines[-1]
    assert last.get_linewidth() == max(line.get_linewidth() for line in ax.lines)
    assert str(done["val_loss"].idxmin()) in last.get_label()
    assert fig.axes[1].get_ylabel() == "validation MSE (scaled)"


def test_constant_columns_and_ties_do_not_break_the_figures(tmp_path):
    table = make_table(DEFAULT, n=6).assign(units=64, val_loss=0.5, fold_1=0.5)
    pc = plots.parallel_coordinates(table, DEFAULT, path=tmp_path / "pc.png")
    assert all(np.isfinite(line.get_ydata()).all() for line in pc.axes[0].lines)
    assert "#0" in pc.axes[0].lines[-1].get_label()  # the first of tied best trials
    plots.param_effects(table, DEFAULT, path=tmp_path / "effects.png")
    plots.trials(table, path=tmp_path / "trials.png")
    plots.fold_losses(table, path=tmp_path / "folds.png")
    failed = table.assign(status="FAILED", val_loss=np.nan)
    assert len(plots.parallel_coordinates(failed, DEFAULT).axes[0].lines) == 0
    plots.param_effects(failed, DEFAULT)
    plots.trials(failed)


def test_fold_losses_lines_and_missing_folds(tmp_path):
    table = through_csv(make_table(CUSTOM, n=12, folds=4), tmp_path)
    fig = plots.fold_losses(table, path=tmp_path / "folds.png")
    check(fig, tmp_path / "folds.png")
    ax, = fig.axes
    done = completed(table)
    grey, (best, mean) = ax.lines[:-2], ax.lines[-2:]
    assert len(grey) == len(done) and list(best.get_xdata()) == [1, 2, 3, 4]
    assert best.get_ydata() == pytest.approx(done.loc[done["val_loss"].idxmin(), [f"fold_{k}" for k in range(1, 5)]])
    assert mean.get_linestyle() == "--" and mean.get_ydata()[0] == pytest.approx(done["fold_1"].mean())
    with pytest.raises(ValueError, match="fold_1"):
        plots.fold_losses(make_table(CUSTOM))


def test_importance_bars_largest_at_top(tmp_path):
    shares = pd.Series({"units": 0.1, "learning_rate": 0.6, "optimizer": 0.3})
    fig = plots.importance(shares, path=tmp_path / "importance.png")
    check(fig, tmp_path / "importance.png")
    ax, = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "learning_rate" and labels[0] == "units"  # barh draws bottom up
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.1, 0.3, 0.6])
    assert ax.get_xlabel() == "importance (share of objective variance, fANOVA)"


# ------------------------------------------------------------------ architecture searches (conditional settings)

CONDITIONAL = SearchSpace(params=(Param("architecture", str, choices=("gru", "tcn")),
                                  Param("units", int, min=4, max=64, step=4),
                                  Param("tcn.kernel_size", int, choices=(3, 5))), fixed={})


def conditional_table(n: int = 12, best_architecture: str = "gru") -> pd.DataFrame:
    """Trials alternating gru/tcn (tcn.kernel_size empty in gru trials), the overall best of `best_architecture`."""
    rng = np.random.default_rng(1)
    rows = []
    for t in range(n):
        arch = ("gru", "tcn")[t % 2]
        rows.append({"trial": t, "architecture": arch, "units": 4 * (1 + t % 16),
                     "tcn.kernel_size": (3, 5)[(t // 2) % 2] if arch == "tcn" else np.nan,
                     "val_loss": 0.5 + rng.uniform(0, 1) - (0.4 if arch == best_architecture and t == 2 + (arch == "tcn") else 0),
                     "best_epoch": 2, "seconds": 1.0, "status": STATUSES[t % len(STATUSES)] if t > 3 else "COMPLETED"})
    return pd.DataFrame(rows).set_index("trial")


@pytest.mark.parametrize("best_architecture", ["gru", "tcn"])
def test_param_effects_shows_an_architectures_setting_only_for_its_trials(best_architecture, tmp_path):
    table = through_csv(conditional_table(best_architecture=best_architecture), tmp_path)
    fig = plots.param_effects(table, CONDITIONAL, path=tmp_path / "effects.png")
    check(fig, tmp_path / "effects.png")
    arch_ax, units_ax, kernel_ax = fig.axes
    done = completed(table)
    tcn = done[done["architecture"] == "tcn"]
    assert kernel_ax.get_title() == "tcn.kernel_size\n(tcn trials only)"
    assert kernel_ax.get_xlabel() == "tcn: dilated kernel (time steps)"
    assert arch_ax.get_xlabel() == "architecture (network)" and [t.get_text() for t in arch_ax.get_xticklabels()] == ["gru", "tcn"]
    assert sorted(kernel_ax.collections[0].get_offsets()[:, 1]) == pytest.approx(sorted(tcn["val_loss"]))
    assert len(units_ax.collections[0].get_offsets()) == len(done)  # a common hyperparameter: every trial
    starred = [c for c in kernel_ax.collections if "best trial" in str(c.get_label())]
    assert bool(starred) == (best_architecture == "tcn")  # the best trial is starred only where it is active


def test_parallel_coordinates_lines_pass_by_the_axes_of_other_architectures(tmp_path):
    table = through_csv(conditional_table(), tmp_path)
    fig = plots.parallel_coordinates(table, CONDITIONAL, path=tmp_path / "pc.png")
    check(fig, tmp_path / "pc.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][2] == "tcn.kernel_size\n(tcn only)"
    done = completed(table)
    assert len(ax.lines) == len(done)
    spans = sorted(tuple(line.get_xdata()) for line in ax.lines)
    assert spans.count((0, 1, 3)) == (done["architecture"] == "gru").sum()  # gru: no point on the tcn axis
    assert spans.count((0, 1, 2, 3)) == (done["architecture"] == "tcn").sum()
    assert all(np.isfinite(line.get_ydata()).all() for line in ax.lines)


def test_importance_of_a_conditional_search_leaves_out_settings_some_trials_lack(tmp_path):
    from lstmkit.tuning.results import param_importance

    table = through_csv(conditional_table(), tmp_path)
    shares = param_importance(table, CONDITIONAL)
    assert set(shares.index) == {"architecture", "units"} and shares.sum() == pytest.approx(1.0)
    tcn_only = table[table["architecture"] == "tcn"]
    assert "tcn.kernel_size" in param_importance(tcn_only, CONDITIONAL).index  # all completed trials have it
    check(plots.importance(shares, path=tmp_path / "importance.png"), tmp_path / "importance.png")


# ------------------------------------------------------------------ Ray searches: tuning/lineage.csv (pbt, asha)

def lineage_table(copies: bool = True) -> pd.DataFrame:
    """4 trials x 6 epochs; with `copies`, trial 3 takes trial 0's weights after epoch 2 and trial 1 takes trial 3's
    after epoch 4, each with new hyperparameters, and trial 1 wins at epoch 6 (ancestry 0 -> 3 -> 1)."""
    rate = {0: 1e-3, 1: 3e-4, 2: 1e-2, 3: 3e-3}
    rows = [{"trial": t, "epoch": e, "val_loss": 0.5 / e + 0.1 * t, "learning_rate": rate[t], "dropout": 0.1 * t,
             "batch_size": 32 * (t + 1), "architecture": "lstm", "copied_from": np.nan, "seconds": e + 0.5 * t}
            for t in range(4) for e in range(1, 7)]
    table = pd.DataFrame(rows).set_index(["trial", "epoch"], drop=False)
    if copies:
        table.loc[(3, 3), "copied_from"] = 0
        table.loc[[(3, e) for e in (3, 4)], ["learning_rate", "dropout"]] = [1.2e-3, 0.05]
        table.loc[(1, 5), "copied_from"] = 3
        table.loc[[(1, e) for e in (5, 6)], ["learning_rate", "batch_size"]] = [8e-4, 64]
        table.loc[(1, 6), "val_loss"] = 0.01
    return table.reset_index(drop=True)


def lineage_csv(table: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """The table as chapter 03 reads it back from tuning/lineage.csv (copied_from empty where no copy)."""
    table.to_csv(tmp_path / "lineage.csv", index=False)
    return pd.read_csv(tmp_path / "lineage.csv")


def copy_arrows(ax: plt.Axes) -> list:
    return [p for p in ax.patches if p.get_gid() == "copy"]


def test_lineage_draws_a_track_per_trial_an_arrow_per_copy_and_the_winners_ancestry(tmp_path):
    table = lineage_csv(lineage_table(), tmp_path)
    fig = plots.lineage(table, path=tmp_path / "lineage.png")
    check(fig, tmp_path / "lineage.png")
    ax, bar = fig.axes
    assert bar.get_ylabel() == "learning rate" and bar.get_yscale() == "log"
    assert ax.get_xlabel().startswith("epoch") and ax.get_ylabel().startswith("trial") and ax.get_title()
    tracks, = [c for c in ax.collections if c.get_gid() == "tracks"]
    segments = tracks.get_segments()
    assert len(segments) == 4 * 6 - 2  # every epoch but the two trained right after a copy
    assert sorted({s[0, 1] for s in segments}) == [0, 1, 2, 3] and list(ax.get_yticks()) == [0, 1, 2, 3]
    assert all(s[1, 0] - s[0, 0] == 1 and s[0, 1] == s[1, 1] for s in segments)  # one epoch long, horizontal
    colours = np.asarray(tracks.get_array())  # each segment coloured by its epoch's learning rate
    assert list(colours[np.array([s[0, 1] == 2 for s in segments])]) == pytest.approx([1e-2] * 6)
    assert list(colours[np.array([s[0, 1] == 1 for s in segments])]) == pytest.approx([3e-4] * 4 + [8e-4])
    arrows = copy_arrows(ax)  # (matplotlib keeps an arrow's two ends in data units in _posA_posB)
    assert sorted((a._posA_posB[0], a._posA_posB[1]) for a in arrows) == [((2, 0), (3, 3)), ((4, 3), (5, 1))]
    ancestry, = [line for line in ax.lines if line.get_gid() == "ancestry"]
    assert list(zip(ancestry.get_xdata(), ancestry.get_ydata())) == [(0, 0), (2, 0), (3, 3), (4, 3), (5, 1), (6, 1)]
    assert ancestry.get_linewidth() > 2 * tracks.get_linewidths()[0]
    assert "1 ← 3 ← 0" in ancestry.get_label()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("winner's ancestry" in t for t in legend) and any("copy" in t for t in legend)
    winner, = [c for c in ax.collections if c.get_gid() == "winner"]
    assert tuple(winner.get_offsets()[0]) == (6, 1)


def test_lineage_highlights_only_the_copies_on_the_winners_ancestry(tmp_path):
    table = lineage_table()
    table.loc[(table["trial"] == 2) & (table["epoch"] == 6), "val_loss"] = 0.001  # trial 2 (never copied) wins
    ax = plots.lineage(table).axes[0]
    assert {a.get_linewidth() for a in copy_arrows(ax)} == {1.3}  # neither copy leads to trial 2
    ancestry, = [line for line in ax.lines if line.get_gid() == "ancestry"]
    assert set(ancestry.get_ydata()) == {2} and "(trial 2)" in ancestry.get_label()
    ax = plots.lineage(table, best_trial=1).axes[0]  # the winner named by best_hyperparameters.json
    assert sorted(a.get_linewidth() for a in copy_arrows(ax)) == [2.6, 2.6]
    arrows = plots.lineage(table, best_trial=3).axes[0]  # trial 3's ancestry uses the first copy only
    assert sorted(a.get_linewidth() for a in copy_arrows(arrows)) == [1.3, 2.6]
    with pytest.raises(ValueError, match="best trial 7"):
        plots.lineage(table, best_trial=7)


def test_lineage_and_rungs_of_an_asha_search_without_copies(tmp_path):
    table = lineage_table(copies=False)
    table = table[~((table["trial"] == 3) & (table["epoch"] > 2)) & ~((table["trial"] == 2) & (table["epoch"] > 4))]
    table = lineage_csv(table, tmp_path)  # copied_from: an empty column, read back as all NaN
    assert table["copied_from"].isna().all()
    ax = plots.lineage(table, path=tmp_path / "lineage.png").axes[0]
    assert copy_arrows(ax) == []
    fig = plots.rungs(table, path=tmp_path / "rungs.png")
    check(fig, tmp_path / "rungs.png")
    ax, = fig.axes
    lines = [line for line in ax.lines if str(line.get_gid()).startswith("trial ")]
    assert len(lines) == 4 and sorted(len(line.get_xdata()) for line in lines) == [2, 4, 6, 6]
    best = max(lines, key=lambda line: line.get_linewidth())
    assert best.get_gid() == "trial 0" and best.get_ydata()[-1] == pytest.approx(table["val_loss"].min())
    assert "best trial (0" in best.get_label()
    stopped, = [c for c in ax.collections if c.get_gid() == "stopped"]
    assert sorted(stopped.get_offsets()[:, 0]) == [2, 4]  # the two trials stopped before the last epoch
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "validation MSE (scaled, log scale)"
    flat = plots.rungs(table.assign(val_loss=0.5 + 0.01 * table["epoch"])).axes[0]
    assert flat.get_yscale() == "linear" and flat.get_ylabel() == "validation MSE (scaled)"


def test_schedule_follows_the_winners_weights_through_its_donors(tmp_path):
    fig = plots.schedule(lineage_csv(lineage_table(), tmp_path), path=tmp_path / "schedule.png")
    check(fig, tmp_path / "schedule.png")
    rate, dropout, batch = fig.axes
    assert "trial 1" in rate.get_title() and rate.get_yscale() == "linear"  # rates within a factor 3: linear
    assert [ax.get_ylabel().split("\n")[0] for ax in fig.axes] == ["learning rate", "dropout", "batch size"]
    steps = {ax: next(p for p in ax.patches) for ax in fig.axes}  # matplotlib's StepPatch of ax.stairs
    values = {ax: list(step.get_data().values) for ax, step in steps.items()}
    assert values[rate] == pytest.approx([1e-3, 1e-3, 1.2e-3, 1.2e-3, 8e-4, 8e-4])  # trial 0, then 3, then 1
    assert values[dropout] == pytest.approx([0, 0, 0.05, 0.05, 0.1, 0.1])
    assert values[batch] == pytest.approx([32, 32, 128, 128, 64, 64])
    assert list(steps[rate].get_data().edges) == [0, 1, 2, 3, 4, 5, 6]
    assert sorted(line.get_xdata()[0] for line in rate.lines) == [2, 4]  # a dotted line at each copy
    wide = lineage_table()
    wide.loc[wide["trial"] == 0, "learning_rate"] = 1e-4  # the winner's rates now span a factor 12
    rate = plots.schedule(wide).axes[0]
    assert rate.get_yscale() == "log" and rate.get_ylabel() == "learning rate\n(per update, log scale)"


@pytest.mark.parametrize("figure", ["lineage", "rungs", "schedule"])
@pytest.mark.parametrize("column", ["trial", "epoch", "val_loss", "learning_rate", "dropout", "copied_from"])
def test_a_missing_lineage_column_is_named(figure, column):
    needs = {"lineage": {"trial", "epoch", "val_loss", "learning_rate", "copied_from"}, "rungs": {"trial", "epoch", "val_loss"},
             "schedule": {"trial", "epoch", "val_loss", "learning_rate", "dropout", "batch_size", "copied_from"}}[figure]
    table = lineage_table().drop(columns=column)
    if column in needs:
        with pytest.raises(ValueError, match=f"{figure}: the lineage table .* no column '{column}'"):
            getattr(plots, figure)(table)
    else:
        getattr(plots, figure)(table)  # a column it does not need: drawn anyway


def test_an_empty_lineage_table_draws_empty_figures():
    empty = lineage_table().iloc[:0]
    for figure in (plots.lineage, plots.rungs, plots.schedule):
        fig = figure(empty)
        assert any(text.get_text().startswith("no ") for ax in fig.axes for text in ax.texts)
