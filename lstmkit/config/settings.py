"""The configuration tree: one pydantic model per section, and `Config`, the root, with its cross-key checks.

Every key is declared once, with its type, default and meaning (`opt`); the loader (`lstmkit.config.loader`) reads
YAML and `--set` overrides into it, and `lstmkit config` and the report's reference page list the keys from here.
What belongs to another layer is checked there: an architecture's own settings (`model.<architecture>.*`, declared in
its file under `lstmkit/models/neural/`), the names of the named datasets (`data.source`) and the search space
(`tuning.space`); `lstmkit.stages.checks.check_config` runs those checks before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from lstmkit.config.types import (
    AUTO,
    Bool,
    Choice,
    Dict,
    Int,
    IntOrAuto,
    List,
    Number,
    OptStr,
    Section,
    Str,
    opt,
)
from lstmkit.core.atomic import atomic_write_text
from lstmkit.core.errors import ConfigError

OPTIMIZERS = ("adam", "rmsprop", "sgd")
NORMALIZATIONS = ("none", "last", "revin")
STRATEGIES = ("random", "grid", "bayesian", "hyperband", "optuna", "pbt", "asha", "none")
RAY_STRATEGIES = ("pbt", "asha")  # run on Ray Tune (lstmkit.tuning.backends.ray)
FIT_ON = ("train", "train+val")
UNCERTAINTY_METHODS = ("quantile", "mc_dropout", "deepar", "conformal", "aci")  # see UncertaintyConfig.method
UNCERTAINTY_BASES = ("quantile", "mc_dropout", "deepar")
CALIBRATIONS = ("auto", "val", "oof")
ANOMALY_SPANS = ("test", "val+test")
ENSEMBLES = ("mean", "top_k", "none")
DEPLOYMENT_POLICIES = ("static", "periodic", "drift")


class DataConfig(Section):
    source: Str = opt("synthetic",
        "Where the series comes from: `synthetic` (generated with known ground truth), `csv` (`data.path`), or a named dataset: `etth2` (bundled), `etth1`, `ettm1`, `ettm2`, `jena_climate`, `electricity` (downloaded on first use; see `configs/<name>.yaml` for the last two).")
    path: OptStr = opt(None,
        "CSV file to read when `source` is `csv` (relative to the working directory).")
    date_column: Str = opt("",
        "Name of the timestamp column in the CSV file; empty = detect it: the one column whose first 100 values parse as timestamps (numeric columns never count); several or none is an error listing the columns.")
    target: Str = opt("target",
        "Column to forecast.")
    features: List = opt(["x1", "x2", "x3"],
        "Exogenous input columns fed to the model besides the target's own history; empty = target only.")
    fill_missing: Choice(("error", "interpolate", "ffill")) = opt("error",
        "Missing or infinite values in a CSV: `error` (name the first), or fill them by `interpolate` (in time) or `ffill`; fills are reported in the data chapter.")
    on_gaps: Choice(("error", "resample")) = opt("error",
        "Gaps in the regular time grid of a CSV: `error` (name the first), or `resample` to insert the missing rows (then filled by `data.fill_missing`); timestamps off the grid are an error too, or with `resample` averaged into the grid cell that holds them (reported).")
    on_duplicates: Choice(("error", "first", "last", "mean")) = opt("error",
        "Rows of a CSV sharing a timestamp: `error` (name the first pair), or keep the `first` or `last` row of each group, or their `mean`; the repair is reported in the data chapter.")
    on_unsorted: Choice(("error", "sort")) = opt("error",
        "Timestamps of a CSV that step back in time: `error` (name the first), or `sort` the rows by timestamp (stable: rows sharing a timestamp keep their file order); reported in the data chapter.")
    frequency: OptStr = opt(None,
        "Time step of a CSV as a pandas offset alias (`h`, `15min`); empty = the most common step in the file.")
    units: Str = opt("a.u.",
        "Unit of the target's original values, used in axis labels and tables (a.u. = arbitrary units).")
    decompose_rows: Int = opt(5000,
        "Most recent rows of the series decomposed (MSTL) in the data chapter: raised to four cycles of the longest seasonal period, at most 50,000 (MSTL takes about 0.2 ms a row); the chapter names the span.")
    length: Int = opt(5040,
        "Synthetic only: number of hourly rows to generate.")
    noise_std: Number = opt(0.3,
        "Synthetic only: standard deviation of the target's irreducible noise (the error floor).")
    anomalies: Int = opt(0,
        "Synthetic only: anomalies injected into the test span (spikes, level shifts and variance changes in turn), their ground truth written to data/anomaly_labels.json in the labels format of `anomalies.labels`; 0 = none.")


    def columns(self) -> list[str]:
        """Model input channels: the exogenous features (without the target) followed by the target's own history."""
        return [c for c in self.features if c != self.target] + [self.target]


class SplitConfig(Section):
    train: Number = opt(0.7,
        "Training part: a fraction of the rows when < 1, a row count when an integer >= 1.")
    val: Number = opt(0.15,
        "Validation part (used for early stopping, tuning and baseline selection), fraction or row count.")
    test: Number = opt(0.15,
        "Test part, never seen before evaluation, fraction or row count.")


class ScalingConfig(Section):
    method: Choice(("standard", "minmax")) = opt("standard",
        "Scaler fitted on the training rows only: `standard` (z-score) or `minmax`.")


class WindowConfig(Section):
    lookback: IntOrAuto = opt(48,
        "Number of past time steps the model sees, or `auto`: derived from the series' main seasonal period when the data are loaded (see `lstmkit.data.seasonality.auto_lookback`); the run's config.yaml records the number chosen.")
    horizon: Int = opt(6,
        "Number of future steps forecast at once (direct multi-output).")


class ModelConfig(Section):
    """The network's common settings; an architecture's own settings are the mapping `model.<architecture>` (declared
    and checked by the architecture's file in `lstmkit/models/neural/`)."""

    model_config = {**Section.model_config, "extra": "allow"}

    architecture: Str = opt("lstm",
        "The network: `lstm` (stacked LSTM), `gru`, `bilstm` (bidirectional LSTM over the look-back window), `cnn_lstm` (Conv1D feature extraction, then LSTM), `attention_lstm` (LSTM with temporal attention over its encoder states), `tcn` (causal dilated residual convolutions), `nbeats`, `patchtst` (patched channel-independent Transformer), `tft` (Temporal Fusion Transformer) or `deepar` (autoregressive LSTM with a likelihood head: sample paths for the uncertainty chapter). Each has its own settings under `model.<architecture>`; `layers` and `units` are the depth and width of the recurrent ones (and the TFT's hidden size).")
    layers: Int = opt(1,
        "Stacked recurrent layers (lstm, gru, bilstm, cnn_lstm, attention_lstm, tft's encoder).")
    units: Int = opt(64,
        "Units per recurrent layer (and the TFT's hidden size).")
    dropout: Number = opt(0.2,
        "Dropout (between recurrent layers: not recurrent dropout, so cuDNN kernels stay usable; inside the other architectures' blocks).")
    learning_rate: Number = opt(1e-3,
        "Optimizer learning rate.")
    optimizer: Choice(OPTIMIZERS) = opt("adam",
        "Optimizer: `adam`, `rmsprop` or `sgd`.")
    batch_size: Int = opt(64,
        "Training batch size.")
    normalization: Choice(NORMALIZATIONS) = opt("last",
        "Per-window normalisation inside the model, for every architecture (default `last`: without it an LSTM on a real series with a trend loses to repeating the last value as soon as the test level leaves the training range): `none`; `last` subtracts each channel's last observed value and adds the target's back to the forecast; `revin` uses each window's own mean and standard deviation (reversible instance normalisation).")


    @model_validator(mode="before")
    @classmethod
    def _sections_are_mappings(cls, values: Any) -> Any:
        """Keys besides the common settings must be architecture sections: mappings (nothing = an empty one)."""
        if not isinstance(values, dict):
            return values
        out = dict(values)
        for key, value in values.items():
            if key in cls.model_fields:
                continue
            if value is None:
                out[key] = {}
            elif not isinstance(value, dict):
                raise ValueError(f"unknown config key 'model.{key}'")
        return out

    def section(self, architecture: str) -> dict:
        """The settings given for an architecture under `model.<architecture>` (empty when none were given)."""
        return dict((self.model_extra or {}).get(architecture) or {})

    def sections(self) -> dict[str, dict]:
        """Every architecture section given, by architecture."""
        return {k: dict(v or {}) for k, v in (self.model_extra or {}).items()}


class CompareConfig(Section):
    architectures: List = opt([],
        "Architectures trained side by side on the same windows (names as in `model.architecture`), each with its `model.*` settings (or its tuned ones when the tuner searched it); empty (the default): only `model.architecture`.")
    seeds: Int = opt(1,
        "Seeds per architecture (seed, seed + 1, ...): the evaluation table reports each model's mean and standard deviation over them.")
    ensemble: Choice(ENSEMBLES) = opt("mean",
        "The ensemble in the comparison (when it has two or more models): `mean` of every model, `top_k` (mean of the `top_k` models with the best validation loss) or `none`.")
    top_k: Int = opt(3,
        "Models in a `top_k` ensemble.")


class TrainingConfig(Section):
    epochs: Int = opt(60,
        "Maximum training epochs (early stopping usually ends sooner).")
    patience: Int = opt(8,
        "Epochs without validation improvement before early stopping (best weights restored).")
    reduce_lr_patience: Int = opt(4,
        "Epochs without improvement before the learning rate is halved.")
    use_tuned: Bool = opt(True,
        "Train with the tuning stage's best hyperparameters when they exist.")
    fit_on: Choice(FIT_ON) = opt("train",
        "Data of the final model: `train` (early stopping on validation; the default) or `train+val`: after the usual fit, refit from scratch on training and validation windows for the best epoch count found, so the model sees the most recent data before the test (validation metrics then become in-sample, and the baselines are refitted the same way).")
    verbose: Choice((0, 1, 2), kind=int) = opt(2,
        "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.")
    steps_per_epoch: Int = opt(0,
        "Most batches per training epoch; 0 (the default) trains on every training window each epoch. For very long series: each epoch then takes this many batches from an endless reshuffled stream of the training windows, so successive epochs see different windows; validation still covers every validation window.")


class TuningConfig(Section):
    strategy: Choice(STRATEGIES) = opt("bayesian",
        "Search strategy: `random`, `grid`, `bayesian` (Gaussian process), `hyperband` (Keras Tuner), `optuna` (TPE sampler with a median pruner on per-epoch validation loss), `pbt` (Ray Tune's population-based training: `max_trials` trials train side by side; every `perturbation_interval` epochs the worst quarter copy the weights of the best quarter and perturb learning rate, dropout and batch size), `asha` (Ray Tune's asynchronous successive halving: poor trials are stopped early, at 1, 3, 9, ... epochs), or `none` to skip tuning.")
    max_trials: Int = opt(10,
        "Most configurations tried (all strategies except hyperband, whose budget is `epochs`); raising it resumes a finished search with more trials.")
    max_minutes: Number = opt(0,
        "Time budget of one tuning run in minutes (0 = none): no trial starts after it, the running ones finish, and at least one trial always runs.")
    epochs: Int = opt(20,
        "Most epochs per trial (hyperband: the largest budget).")
    patience: Int = opt(4,
        "Early-stopping patience inside each trial.")
    cv_folds: Int = opt(1,
        "Objective: 1 = the validation loss on the run's validation split (fast); k >= 2 = walk-forward cross-validation: k expanding folds over the training+validation rows, each validated on the next block of `split.val` rows with the scaler refitted on the fold's training rows; the objective is the mean validation loss over the folds.")
    workers: Int = opt(0,
        "Parallel tuning with Keras Tuner's chief/worker mode: 0 = one process; N = a chief oracle and N worker processes on this machine (not with `optuna`). With `pbt` and `asha`: the most trials training at once (0 = one per CPU of the Ray cluster).")
    ray_address: Str = opt("",
        "`pbt` and `asha`: the Ray cluster to run on, e.g. `127.0.0.1:6379` or `auto` (a cluster started with `ray start` on this machine); empty = a private Ray instance inside this process on this machine's cores.")
    gpus_per_trial: Number = opt(0,
        "`pbt` and `asha`: GPUs each trial reserves on the Ray cluster (0 = CPU only; 0.25 = four trials share one GPU).")
    perturbation_interval: Int = opt(2,
        "`pbt`: epochs between two exploit/explore steps (copying a better trial's weights and perturbing its hyperparameters).")
    space: Dict = opt({},
        "Search space, one entry per hyperparameter (`layers`, `units`, `dropout`, `learning_rate`, `batch_size`, `optimizer`, `normalization`, `lookback`, common to every architecture; `architecture`: a list of architectures to choose from, else fixed at `model.architecture`; and an architecture's own settings as `<architecture>.<setting>`, the fields of its `model.<architecture>` section, e.g. `tcn.kernel_size: [3, 5]` or `nbeats.width: {min: 128, max: 512, step: 128}`, sampled only in the trials of that architecture, which must be searched or fixed): a range `{min, max}` with an optional `step` or `log: true`, a list of `choices`, a single fixed value, or `null` to fix it at its `model.*`/`window.lookback` setting. Entries are laid over the default space, chosen on real series (README, Defaults and why): layers 1-2, units 32-128 step 32, dropout 0-0.3 step 0.1, learning rate 3e-4 to 1e-2 (log), batch size 32/64/128, optimizer adam/rmsprop, normalization last/revin. With `strategy: grid` the entries you leave out search the common grid instead: layers 1/2/3, units 50/100/150, dropout 0.2/0.3/0.4/0.5, learning rate 0.001/0.01/0.1, batch size 32/64/128 (324 points, `max_trials` of them run), the rest fixed.")


class EvaluationConfig(Section):
    seasonal_period: IntOrAuto = opt("auto",
        "Season length in steps for the seasonal-naive baseline and the MASE scale, or `auto`: the shortest cycle (day, week or year) that the series' time step holds, e.g. 24 for hourly, 7 for daily, 52 for weekly, 12 for monthly data, 1 (persistence) for yearly; the run's config.yaml records the number chosen.")
    ridge_alphas: List = opt([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
        "Regularisation strengths for the linear baseline, chosen on validation.")
    plot_step: Int = opt(1,
        "Horizon step (1 = next step) shown in the forecast plot.")


class ExplainConfig(Section):
    windows: Int = opt(128,
        "Number of test windows explained (evenly spaced over the test span).")
    steps: Int = opt(64,
        "Integration steps (gradient evaluations per window) of Integrated Gradients; with `auto_steps` the most it may use.")
    auto_steps: Bool = opt(False,
        "Start at 16 steps and double them until the completeness gap is below `tolerance` (at most `steps`).")
    tolerance: Number = opt(0.01,
        "Completeness gap allowed by `auto_steps`, as a fraction of |f(x) - f(baseline)|.")
    method: Choice(("midpoint", "left", "right", "trapezoid", "gausslegendre")) = opt("midpoint",
        "Integration rule: Riemann `left`, `right` or `midpoint`, `trapezoid`, or `gausslegendre` (the most accurate per step on smooth models).")
    baseline: Choice(("zeros", "mean", "last", "noise")) = opt("zeros",
        "The reference input: `zeros` (scaled zeros: the training mean under z-scoring), `mean` (each channel's training mean in scaled units, also right under min-max scaling), `last` (a flat line at each window's last value: attributes the change within the window), or `noise` (the window plus Gaussian noise, averaged over `noise_samples` draws).")
    noise_samples: Int = opt(8,
        "Noise baseline: number of noisy baselines averaged.")
    noise_std: Number = opt(0.5,
        "Noise baseline: standard deviation of the noise in scaled units (training standard deviations).")
    target: Choice(("step", "mean")) = opt("step",
        "What is explained: `step` (the forecast of `horizon_step`) or `mean` (the mean forecast over the horizon).")
    horizon_step: Int = opt(1,
        "Forecast step whose prediction is explained when `target` is `step` (1 = next step).")
    batch_size: Int = opt(4096,
        "Interpolated inputs per gradient call (bounds memory).")
    cross_check: Bool = opt(True,
        "Compare IG with gradient saliency, gradient x input, permutation importance and SHAP's GradientExplainer.")
    shap_windows: Int = opt(32,
        "Cross-check: windows explained by SHAP (slow: one gradient call per window).")
    permutation_repeats: Int = opt(5,
        "Cross-check: shuffles per feature or lag block in permutation importance.")
    attention_top_k: Int = opt(5,
        "Attention analysis (models with attention weights): how many of the most weighted lags (and channels) of the attention and of IG are compared (top-k overlap).")


class UncertaintyConfig(Section):
    method: List = opt(["conformal", "aci", "quantile", "mc_dropout"],
        "How the uncertainty chapter makes probabilistic forecasts of the selected model (each method is reported beside the others and beside the conformalised seasonal-naive baseline): `quantile` (the architecture retrained with a non-crossing quantile head and the pinball loss), `mc_dropout` (Monte Carlo dropout: only the dropout layers sample), `deepar` (DeepAR's likelihood sample paths), `conformal` (split conformal on the point forecast's absolute errors, per horizon step, with the finite-sample correction), `aci` (adaptive conformal inference, Gibbs & Candes 2021, walking the test span in time order). Combinations `<base>+conformal` and `<base>+aci` calibrate a probabilistic base: `quantile+conformal` is conformalised quantile regression, `mc_dropout+conformal` normalises the scores by the MC-dropout spread, `deepar+conformal` calibrates DeepAR's sample quantiles.")
    levels: List = opt([0.8, 0.9, 0.95],
        "Nominal coverage levels of the central intervals reported (each strictly between 0 and 1).")
    quantiles: List = opt([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "Quantile levels predicted by quantile heads and used for the CRPS, besides the endpoints of every `levels` interval, 0.25, 0.5 and 0.75 (always added: see `UncertaintyConfig.grid`).")
    mc_samples: Int = opt(100,
        "Monte Carlo dropout: forward passes (samples) per window.")
    calibration: Choice(CALIBRATIONS) = opt("auto",
        "Calibration data of the conformal methods, never data the model was fitted on: `val` (validation windows: the model was fitted on training rows), `oof` (out-of-fold residuals of `folds` walk-forward refits over the training+validation rows), or `auto`: `val` when `training.fit_on` is `train`, `oof` when it is `train+val`.")
    folds: Int = opt(3,
        "Walk-forward folds of the `oof` calibration (each refits the model on an expanding prefix of the training+validation rows and forecasts the next block).")
    aci_gamma: Number = opt(0.005,
        "Step size of adaptive conformal inference: how fast the working miscoverage level follows the recent misses (Gibbs & Candes 2021 use 0.005).")
    joint: Bool = opt(True,
        "Also calibrate whole-path (joint) bands: one score per window, the largest standardised error over the horizon, so that a nominal share of paths lies entirely inside.")
    bootstrap: Int = opt(1000,
        "Block-bootstrap resamples of the coverage confidence intervals (blocks of `horizon` windows, as overlapping windows share errors).")

    def grid(self) -> list[float]:
        """Every quantile level forecast, ascending: `quantiles`, 0.25, 0.5, 0.75 and both ends of each `levels` interval."""
        ends = [round((1 - lv) / 2, 10) for lv in self.levels] + [round((1 + lv) / 2, 10) for lv in self.levels]
        return sorted({round(float(q), 10) for q in self.quantiles} | {0.25, 0.5, 0.75} | set(ends))

    def bases(self) -> list[str]:
        """The probabilistic bases named in `method` (quantile, mc_dropout, deepar), in order, without repeats."""
        out: list[str] = []
        for m in self.method:
            base = m.split("+")[0]
            if base in ("quantile", "mc_dropout", "deepar") and base not in out:
                out.append(base)
        return out


class AnomalyConfig(Section):
    labels: Str = opt("",
        "JSON file of labelled anomaly windows, `{file name: [[start, end], ...]}` (the Numenta Anomaly Benchmark's format), looked up by the name of `data.path`; empty = no labels (synthetic runs use the anomalies they injected, see `data.anomalies`).")
    false_alarm_rate: Number = opt(0.01,
        "Chosen false-alarm rate: an observation is flagged when the conformal p-value of its forecast error is at most this.")
    min_run: Int = opt(1,
        "Alarm aggregation: flags count only in runs of at least this many consecutive flagged observations.")
    suppress: Int = opt(0,
        "Alarm aggregation: steps after an alarm during which no new alarm is raised (0 = none).")
    span: Choice(ANOMALY_SPANS) = opt("test",
        "Observations scored: the `test` span, or `val+test` (then calibrated on out-of-fold training residuals).")
    explain: Int = opt(4,
        "Flagged observations whose broken forecast is explained with Integrated Gradients.")
    calibration: Choice(("fixed", "rolling")) = opt("fixed",
        "Calibration scores of the p-values: `fixed` (those of the calibration data only) or `rolling` (the most recent of them and of the scored observations before each one, as many as the calibration data hold: online conformal, which follows a slow drift of the forecast errors; anomalies that pass into the window raise the threshold for a while).")
    smooth: Int = opt(1,
        "Score of an observation: the root mean square of the standardised step-1 forecast residuals over this many observations up to it (trailing, so the score is known when the observation arrives); 1 = the absolute standardised residual itself. Longer windows let a sustained change of behaviour add up (wide label windows such as NAB's), at the cost of flags that last after a short spike.")
    steps: Int = opt(1,
        "Forecasts each observation is checked against: those made 1..steps steps before it (the window whose look-back ends j steps earlier forecasts it at horizon step j; capped at `window.horizon`). Each step's errors are standardised by their own calibration median and MAD and the score is the largest of them: 1 = the step-1 forecast only; more lets a slow drift that the step-1 forecast follows still break the older forecasts, at the cost of a slightly higher threshold (the calibration scores are maxima too, so the p-values stay conformal).")


class ServeConfig(Section):
    host: Str = opt("127.0.0.1",
        "Address `lstmkit serve` listens on (the loopback by default; `0.0.0.0` to accept other machines).")
    port: Int = opt(8000,
        "TCP port of `lstmkit serve`.")
    db: Str = opt("",
        "SQLAlchemy URL of the service's database: empty = an embedded SQLite file `service.db` in the state folder (WAL mode), or e.g. `postgresql+psycopg://user@127.0.0.1:5432/lstmkit`.")
    state: Str = opt("",
        "Folder of the service's state: the SQLite database, every model version's bundle (`models/<version>/`) and the retrain jobs' logs; empty = `<bundle folder>-service` beside the bundle.")
    max_body_bytes: Int = opt(4_000_000,
        "Largest request body accepted (bytes); larger ones are refused with 413 before they are read.")
    max_rows: Int = opt(100_000,
        "Most observations one request may append (or one window may hold).")
    batch_max: Int = opt(64,
        "Request batching: most forecast windows run through the model in one call.")
    batch_wait_ms: Number = opt(2.0,
        "Request batching, under load only (the last model call ran several windows): how long the first waiting forecast waits for others to join its batch (ms); a forecast reaching an idle model runs at once.")
    metrics_window: Int = opt(168,
        "Scored forecasts (per horizon step 1) in the rolling error of `/v1/series/{id}/metrics` and of the drift trigger.")
    retrain_every: Int = opt(0,
        "Retrain trigger: start a retrain job after this many new observations of a series since the last one; 0 = off.")
    drift: Bool = opt(False,
        "Retrain trigger: start a retrain job when the rolling error of a series leaves its calibrated band (the `drift_level` quantile of the rolling error on the bundle's calibration windows).")
    drift_level: Number = opt(0.99,
        "Drift trigger: quantile of the calibration rolling errors that bounds the band.")
    holdout: Int = opt(0,
        "Retraining: most recent stored rows held out to score champion and challenger (neither trains on them; the challenger is promoted only if its error there is lower); 0 = as many as the bundle's validation split.")
    min_history: Int = opt(0,
        "Retraining: fewest stored rows of a series a retrain job needs; 0 = enough for the held-out span plus one training and one validation window.")


class DeploymentConfig(Section):
    steps: Int = opt(0,
        "Observations of the test span the deployment chapter replays against the service, one at a time; 0 = all of them.")
    retrain_every: Int = opt(0,
        "The periodic policy of the chapter retrains every this many observations; 0 = a quarter of the replayed steps plus one (three retrains, none on the last observation, after which nothing is forecast).")
    policies: List = opt(["static", "periodic", "drift"],
        "Retraining policies replayed side by side: `static` (the exported model throughout), `periodic` (every `deployment.retrain_every` observations), `drift` (when the rolling error leaves its calibrated band).")
    latency_requests: Int = opt(200,
        "Single-window forecast requests timed for the chapter's latency percentiles.")


class Config(Section):
    seed: Int = opt(42,
        "Seed for data generation, shuffling, weight initialisation and tuning.")
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    uncertainty: UncertaintyConfig = Field(default_factory=UncertaintyConfig)
    anomalies: AnomalyConfig = Field(default_factory=AnomalyConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)

    def to_dict(self) -> dict:
        """Plain nested dict of every setting (YAML-safe)."""
        return self.model_dump()

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        """Checks that a single value cannot express (ConfigError naming the key)."""
        check(self)
        return self

    def save(self, path: str | Path) -> None:
        """Write the configuration as YAML, atomically."""
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def check(cfg: Config) -> None:
    """Cross-key checks of a whole configuration; a ConfigError naming the key and what it must be."""
    positive = {"window.lookback": cfg.window.lookback, "window.horizon": cfg.window.horizon,
                "training.epochs": cfg.training.epochs, "tuning.max_trials": cfg.tuning.max_trials,
                "tuning.epochs": cfg.tuning.epochs, "tuning.patience": cfg.tuning.patience, "model.layers": cfg.model.layers,
                "model.units": cfg.model.units, "model.batch_size": cfg.model.batch_size,
                "evaluation.seasonal_period": cfg.evaluation.seasonal_period,
                "explain.windows": cfg.explain.windows, "explain.steps": cfg.explain.steps,
                "explain.noise_samples": cfg.explain.noise_samples, "explain.shap_windows": cfg.explain.shap_windows,
                "explain.permutation_repeats": cfg.explain.permutation_repeats,
                "data.length": cfg.data.length}
    for key, v in positive.items():
        if v != AUTO and v < 1:
            raise ConfigError(f"{key}: must be at least 1, got {v}")
    for key, v in {"split.train": cfg.split.train, "split.val": cfg.split.val, "split.test": cfg.split.test}.items():
        if v <= 0:
            raise ConfigError(f"{key}: must be positive, got {v}")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {cfg.model.dropout}")
    if len(set(cfg.compare.architectures)) != len(cfg.compare.architectures):
        raise ConfigError(f"compare.architectures: {cfg.compare.architectures} repeats an architecture")
    if cfg.compare.seeds < 1 or cfg.compare.top_k < 1:
        raise ConfigError("compare.seeds and compare.top_k must be at least 1")
    if cfg.training.steps_per_epoch < 0:
        raise ConfigError(f"training.steps_per_epoch: must be 0 (every window) or positive, got {cfg.training.steps_per_epoch}")
    _check_tuning(cfg.tuning)
    _check_uncertainty(cfg)
    _check_deployment(cfg.deployment)
    for key in ("retrain_every", "holdout", "min_history"):  # retraining (lstmkit.service.retrain)
        if getattr(cfg.serve, key) < 0:
            raise ConfigError(f"serve.{key}: must be 0 (off/automatic) or positive, got {getattr(cfg.serve, key)}")
    if cfg.serve.metrics_window < 1:
        raise ConfigError(f"serve.metrics_window: must be at least 1, got {cfg.serve.metrics_window}")
    if not 0 < cfg.serve.drift_level <= 1:
        raise ConfigError(f"serve.drift_level: must be in (0, 1], got {cfg.serve.drift_level}")
    if not 1 <= cfg.explain.horizon_step <= cfg.window.horizon:
        raise ConfigError(f"explain.horizon_step: must be between 1 and window.horizon ({cfg.window.horizon})")
    if not 1 <= cfg.evaluation.plot_step <= cfg.window.horizon:
        raise ConfigError(f"evaluation.plot_step: must be between 1 and window.horizon ({cfg.window.horizon})")
    if cfg.data.source == "csv" and not cfg.data.path:
        raise ConfigError("data.path: required when data.source is csv")


def _check_tuning(t: TuningConfig) -> None:
    """Checks of the `tuning.*` settings (the search space itself is checked by lstmkit.tuning.space)."""
    if t.max_minutes < 0:
        raise ConfigError(f"tuning.max_minutes: must be 0 (no budget) or positive, got {t.max_minutes}")
    if t.cv_folds < 1 or t.workers < 0:
        raise ConfigError("tuning.cv_folds must be at least 1 and tuning.workers at least 0")
    if t.workers and t.strategy == "optuna":
        raise ConfigError("tuning.workers: distributed tuning uses Keras Tuner's chief/worker mode; "
                          "choose random, grid, bayesian or hyperband, or set tuning.workers to 0")
    if t.strategy in RAY_STRATEGIES and t.cv_folds != 1:
        raise ConfigError(f"tuning.cv_folds: {t.strategy} scores every trial epoch by epoch on the validation "
                          f"split; set tuning.cv_folds to 1 (got {t.cv_folds})")
    if t.gpus_per_trial < 0:
        raise ConfigError(f"tuning.gpus_per_trial: must be 0 (CPU only) or positive, got {t.gpus_per_trial}")
    if t.perturbation_interval < 1:
        raise ConfigError(f"tuning.perturbation_interval: must be at least 1 epoch, got {t.perturbation_interval}")
    if t.strategy == "pbt" and t.max_trials < 2:
        raise ConfigError(f"tuning.max_trials: pbt needs a population of at least 2 trials, got {t.max_trials}")


def _check_deployment(d: DeploymentConfig) -> None:
    """Checks of the `deployment.*` settings."""
    for key, v in {"deployment.steps": d.steps, "deployment.retrain_every": d.retrain_every}.items():
        if v < 0:
            raise ConfigError(f"{key}: must be 0 (automatic) or positive, got {v}")
    if d.latency_requests < 1:
        raise ConfigError(f"deployment.latency_requests: must be at least 1, got {d.latency_requests}")
    if not d.policies:
        raise ConfigError(f"deployment.policies: a non-empty list of {', '.join(DEPLOYMENT_POLICIES)}, got {d.policies!r}")
    for p in d.policies:
        if p not in DEPLOYMENT_POLICIES:
            raise ConfigError(f"deployment.policies: {p!r} is not one of {', '.join(DEPLOYMENT_POLICIES)}")
    if len(set(d.policies)) != len(d.policies):
        raise ConfigError(f"deployment.policies: {d.policies} repeats a policy")


def _check_uncertainty(cfg: Config) -> None:
    """Checks of the `uncertainty.*` and `anomalies.*` settings."""
    u, a = cfg.uncertainty, cfg.anomalies
    for m in u.method:
        parts = str(m).split("+")
        ok = (len(parts) == 1 and parts[0] in UNCERTAINTY_METHODS) or (
            len(parts) == 2 and parts[0] in UNCERTAINTY_BASES and parts[1] in ("conformal", "aci"))
        if not ok:
            raise ConfigError(f"uncertainty.method: {m!r} is not a method; methods are {', '.join(UNCERTAINTY_METHODS)} "
                              "or a base (quantile, mc_dropout, deepar) joined to conformal or aci by `+`, e.g. quantile+conformal")
    if not u.levels or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1 for v in u.levels):
        raise ConfigError(f"uncertainty.levels: each level must be a number strictly between 0 and 1, got {u.levels}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1 for v in u.quantiles):
        raise ConfigError(f"uncertainty.quantiles: each quantile level must be strictly between 0 and 1, got {u.quantiles}")
    for key, v in {"uncertainty.mc_samples": u.mc_samples, "uncertainty.folds": u.folds,
                   "uncertainty.bootstrap": u.bootstrap, "anomalies.min_run": a.min_run, "anomalies.smooth": a.smooth,
                   "anomalies.steps": a.steps}.items():
        if v < 1:
            raise ConfigError(f"{key}: must be at least 1, got {v}")
    if u.folds < 2 and u.calibration == "oof":
        raise ConfigError("uncertainty.folds: out-of-fold calibration needs at least 2 folds")
    if not 0 < u.aci_gamma < 1:
        raise ConfigError(f"uncertainty.aci_gamma: must be in (0, 1), got {u.aci_gamma}")
    if not 0 < a.false_alarm_rate < 1:
        raise ConfigError(f"anomalies.false_alarm_rate: must be in (0, 1), got {a.false_alarm_rate}")
    if a.suppress < 0 or a.explain < 0 or cfg.data.anomalies < 0:
        raise ConfigError("anomalies.suppress, anomalies.explain and data.anomalies must be at least 0")

