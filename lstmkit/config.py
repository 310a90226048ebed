"""Run configuration: one typed tree of dataclasses, loaded from YAML and dotted overrides."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstmkit.atomic import atomic_write_text


class ConfigError(ValueError):
    """A configuration file or override that cannot be used as given."""


OPTIMIZERS = ("adam", "rmsprop", "sgd")
NORMALIZATIONS = ("none", "last", "revin")
STRATEGIES = ("random", "grid", "bayesian", "hyperband", "optuna", "pbt", "asha", "none")
RAY_STRATEGIES = ("pbt", "asha")  # run on Ray Tune (lstmkit.tuners_ray)
FIT_ON = ("train", "train+val")
ARCHITECTURES = ("lstm", "gru", "bilstm", "cnn_lstm", "attention_lstm", "tcn", "nbeats", "patchtst", "tft", "deepar")
LIKELIHOODS = ("gaussian", "student_t")
UNCERTAINTY_METHODS = ("quantile", "mc_dropout", "deepar", "conformal", "aci")  # see UncertaintyConfig.method
CALIBRATIONS = ("auto", "val", "oof")
ANOMALY_SPANS = ("test", "val+test")
ENSEMBLES = ("mean", "top_k", "none")
AUTO = "auto"  # a setting derived from the loaded series (see lstmkit.seasonality.resolve_config)

# The default search space (see `tuning.space`); tunables left out are fixed at model.* / window.lookback.
# Chosen on the validation splits of public real series (benchmarks/real_defaults.py, README "Defaults and why"):
# per-window normalisation is what lets an LSTM follow a level the training rows never reached, and neither `last`
# nor `revin` won on every series, so the search picks one of them per series. `none` is left out: where it won on
# validation (El Nino, by 0.0013) it lost on test by a factor 2, as it does whenever the test level leaves the
# training range; set `tuning.space.normalization: [none, last, revin]` for series without level shifts (the
# synthetic one: drivers that act through their levels). The other ranges are sized for trials of a
# few epochs on small real series: adam or rmsprop at 3e-4 to 1e-2 (sgd, and the ends of the old 1e-4..1e-1 range,
# spend trials that cannot converge in a trial's epochs), at most 2 layers of 128 units, dropout up to 0.3.
DEFAULT_SPACE: dict = {
    "layers": {"min": 1, "max": 2},
    "units": {"min": 32, "max": 128, "step": 32},
    "dropout": {"min": 0.0, "max": 0.3, "step": 0.1},
    "learning_rate": {"min": 3.0e-4, "max": 1.0e-2, "log": True},
    "batch_size": {"choices": [32, 64, 128]},
    "optimizer": {"choices": ["adam", "rmsprop"]},
    "normalization": {"choices": ["last", "revin"]},
}


def _opt(default: Any, help: str, choices: tuple | None = None) -> Any:
    """Declare a config field with its documentation (and allowed values)."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    source: str = _opt("synthetic", "Where the series comes from: `synthetic` (generated with known ground truth), `csv` (`data.path`), or a named dataset: `etth2` (bundled), `etth1`, `ettm1`, `ettm2`, `jena_climate`, `electricity` (downloaded on first use; see `configs/<name>.yaml` for the last two).")
    path: str | None = _opt(None, "CSV file to read when `source` is `csv` (relative to the working directory).")
    date_column: str = _opt("", "Name of the timestamp column in the CSV file; empty = detect it: the one column whose first 100 values parse as timestamps (numeric columns never count); several or none is an error listing the columns.")
    target: str = _opt("target", "Column to forecast.")
    features: list = _opt(["x1", "x2", "x3"], "Exogenous input columns fed to the model besides the target's own history; empty = target only.")
    fill_missing: str = _opt("error", "Missing or infinite values in a CSV: `error` (name the first), or fill them by `interpolate` (in time) or `ffill`; fills are reported in the data chapter.", ("error", "interpolate", "ffill"))
    on_gaps: str = _opt("error", "Gaps in the regular time grid of a CSV: `error` (name the first), or `resample` to insert the missing rows (then filled by `data.fill_missing`); timestamps off the grid are an error too, or with `resample` averaged into the grid cell that holds them (reported).", ("error", "resample"))
    on_duplicates: str = _opt("error", "Rows of a CSV sharing a timestamp: `error` (name the first pair), or keep the `first` or `last` row of each group, or their `mean`; the repair is reported in the data chapter.", ("error", "first", "last", "mean"))
    on_unsorted: str = _opt("error", "Timestamps of a CSV that step back in time: `error` (name the first), or `sort` the rows by timestamp (stable: rows sharing a timestamp keep their file order); reported in the data chapter.", ("error", "sort"))
    frequency: str | None = _opt(None, "Time step of a CSV as a pandas offset alias (`h`, `15min`); empty = the most common step in the file.")
    units: str = _opt("a.u.", "Unit of the target's original values, used in axis labels and tables (a.u. = arbitrary units).")
    decompose_rows: int = _opt(5000, "Most recent rows of the series decomposed (MSTL) in the data chapter: raised to four cycles of the longest seasonal period, at most 50,000 (MSTL takes about 0.2 ms a row); the chapter names the span.")
    length: int = _opt(5040, "Synthetic only: number of hourly rows to generate.")
    noise_std: float = _opt(0.3, "Synthetic only: standard deviation of the target's irreducible noise (the error floor).")
    anomalies: int = _opt(0, "Synthetic only: anomalies injected into the test span (spikes, level shifts and variance changes in turn), their ground truth written to data/anomaly_labels.json in the labels format of `anomalies.labels`; 0 = none.")


@dataclass
class SplitConfig:
    train: float = _opt(0.7, "Training part: a fraction of the rows when < 1, a row count when an integer >= 1.")
    val: float = _opt(0.15, "Validation part (used for early stopping, tuning and baseline selection), fraction or row count.")
    test: float = _opt(0.15, "Test part, never seen before evaluation, fraction or row count.")


@dataclass
class ScalingConfig:
    method: str = _opt("standard", "Scaler fitted on the training rows only: `standard` (z-score) or `minmax`.", ("standard", "minmax"))


@dataclass
class WindowConfig:
    lookback: int | str = _opt(48, "Number of past time steps the model sees, or `auto`: derived from the series' main seasonal period when the data are loaded (see `lstmkit.seasonality.auto_lookback`); the run's config.yaml records the number chosen.")
    horizon: int = _opt(6, "Number of future steps forecast at once (direct multi-output).")


@dataclass
class CNNLSTMConfig:
    filters: int = _opt(32, "Conv1D filters per convolution layer (before the LSTM).")
    kernel_size: int = _opt(3, "Conv1D kernel width in time steps (causal padding: no step sees its future).")
    conv_layers: int = _opt(2, "Convolution layers before the LSTM.")


@dataclass
class AttentionLSTMConfig:
    score: str = _opt("additive", "Attention score of the last state over the encoder states: `additive` (Bahdanau et al. 2015) or `dot` (Luong et al. 2015).", ("additive", "dot"))


@dataclass
class TCNConfig:
    filters: int = _opt(32, "Conv1D filters of every residual block.")
    kernel_size: int = _opt(3, "Kernel width of the causal dilated convolutions (at least 2).")
    dilations: list = _opt([], "Dilation of each residual block; empty (the default): 1, 2, 4, ... until the receptive field 1 + 2 (kernel_size - 1) sum(dilations) covers the look-back window.")


@dataclass
class NBEATSConfig:
    stacks: str = _opt("generic", "`generic` (two stacks with learned linear bases, N-BEATS-G) or `interpretable` (a polynomial trend stack, then a Fourier seasonality stack, the blocks of a stack sharing weights: N-BEATS-I), Oreshkin et al. 2020. N-BEATS is univariate, as in the paper: it reads the target channel of the window only and ignores the features.", ("generic", "interpretable"))
    blocks: int = _opt(3, "Blocks per stack.")
    fc_layers: int = _opt(4, "Fully connected layers per block.")
    width: int = _opt(256, "Units of each fully connected layer.")
    degree: int = _opt(3, "Interpretable stacks: degree of the trend polynomial.")
    harmonics: int = _opt(8, "Interpretable stacks: Fourier harmonics of the seasonality basis, periods lookback / k steps for k = 1..harmonics (at most (lookback - 1) // 2).")


@dataclass
class PatchTSTConfig:
    patch_len: int = _opt(16, "Time steps per patch (Nie et al. 2023: 16).")
    stride: int = _opt(8, "Steps between the starts of successive patches (8: half-overlapping).")
    d_model: int = _opt(16, "Width of the Transformer (the paper's ETTh2 setting: 16).")
    heads: int = _opt(4, "Attention heads.")
    layers: int = _opt(3, "Transformer encoder layers.")
    d_ff: int = _opt(128, "Width of each encoder layer's feed-forward network.")
    norm: str = _opt("batch", "Normalisation after each encoder sub-layer: `batch` (BatchNorm over d_model, the paper's) or `layer` (LayerNorm). The paper pairs the model with `model.normalization: revin`, `model.dropout: 0.3`, learning rate 1e-4 and batch size 128 on ETTh2.", ("batch", "layer"))


@dataclass
class TFTConfig:
    heads: int = _opt(4, "Heads of the interpretable multi-head attention (Lim et al. 2021); `model.units` is the hidden size.")


@dataclass
class DeepARConfig:
    likelihood: str = _opt("gaussian", "Likelihood of DeepAR's head (Salinas et al. 2020), fitted by negative log-likelihood under teacher forcing: `gaussian` or `student_t` (heavier tails; its degrees of freedom, above 2, are learned per step). DeepAR's reported loss/val_loss is its point forecast's MSE like every architecture's (the NLL is `nll`/`val_nll` in the training history).", LIKELIHOODS)
    samples: int = _opt(200, "Sample paths drawn per window by ancestral sampling (each step's draw fed back as the next input) when DeepAR's intervals are made (uncertainty.method `deepar`). Its point forecast needs no sampling: the mean path (each step's predictive mean fed back).")


@dataclass
class ModelConfig:
    architecture: str = _opt("lstm", "The network: `lstm` (stacked LSTM), `gru`, `bilstm` (bidirectional LSTM over the look-back window), `cnn_lstm` (Conv1D feature extraction, then LSTM), `attention_lstm` (LSTM with temporal attention over its encoder states), `tcn` (causal dilated residual convolutions), `nbeats`, `patchtst` (patched channel-independent Transformer), `tft` (Temporal Fusion Transformer) or `deepar` (autoregressive LSTM with a likelihood head: sample paths for the uncertainty chapter). Each has its own settings under `model.<architecture>`; `layers` and `units` are the depth and width of the recurrent ones (and the TFT's hidden size).", ARCHITECTURES)
    layers: int = _opt(1, "Stacked recurrent layers (lstm, gru, bilstm, cnn_lstm, attention_lstm, tft's encoder).")
    units: int = _opt(64, "Units per recurrent layer (and the TFT's hidden size).")
    dropout: float = _opt(0.2, "Dropout (between recurrent layers: not recurrent dropout, so cuDNN kernels stay usable; inside the other architectures' blocks).")
    learning_rate: float = _opt(1e-3, "Optimizer learning rate.")
    optimizer: str = _opt("adam", "Optimizer: `adam`, `rmsprop` or `sgd`.", OPTIMIZERS)
    batch_size: int = _opt(64, "Training batch size.")
    normalization: str = _opt("last", "Per-window normalisation inside the model, for every architecture (default `last`: without it an LSTM on a real series with a trend loses to repeating the last value as soon as the test level leaves the training range): `none`; `last` subtracts each channel's last observed value and adds the target's back to the forecast; `revin` uses each window's own mean and standard deviation (reversible instance normalisation).", NORMALIZATIONS)
    cnn_lstm: CNNLSTMConfig = field(default_factory=CNNLSTMConfig)
    attention_lstm: AttentionLSTMConfig = field(default_factory=AttentionLSTMConfig)
    tcn: TCNConfig = field(default_factory=TCNConfig)
    nbeats: NBEATSConfig = field(default_factory=NBEATSConfig)
    patchtst: PatchTSTConfig = field(default_factory=PatchTSTConfig)
    tft: TFTConfig = field(default_factory=TFTConfig)
    deepar: DeepARConfig = field(default_factory=DeepARConfig)


@dataclass
class CompareConfig:
    architectures: list = _opt([], "Architectures trained side by side on the same windows (names as in `model.architecture`), each with its `model.*` settings (or its tuned ones when the tuner searched it); empty (the default): only `model.architecture`.")
    seeds: int = _opt(1, "Seeds per architecture (seed, seed + 1, ...): the evaluation table reports each model's mean and standard deviation over them.")
    ensemble: str = _opt("mean", "The ensemble in the comparison (when it has two or more models): `mean` of every model, `top_k` (mean of the `top_k` models with the best validation loss) or `none`.", ENSEMBLES)
    top_k: int = _opt(3, "Models in a `top_k` ensemble.")


@dataclass
class TrainingConfig:
    epochs: int = _opt(60, "Maximum training epochs (early stopping usually ends sooner).")
    patience: int = _opt(8, "Epochs without validation improvement before early stopping (best weights restored).")
    reduce_lr_patience: int = _opt(4, "Epochs without improvement before the learning rate is halved.")
    use_tuned: bool = _opt(True, "Train with the tuning stage's best hyperparameters when they exist.")
    fit_on: str = _opt("train", "Data of the final model: `train` (early stopping on validation; the default) or `train+val`: after the usual fit, refit from scratch on training and validation windows for the best epoch count found, so the model sees the most recent data before the test (validation metrics then become in-sample, and the baselines are refitted the same way).", FIT_ON)
    verbose: int = _opt(2, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.", (0, 1, 2))
    steps_per_epoch: int = _opt(0, "Most batches per training epoch; 0 (the default) trains on every training window each epoch. For very long series: each epoch then takes this many batches from an endless reshuffled stream of the training windows, so successive epochs see different windows; validation still covers every validation window.")


@dataclass
class TuningConfig:
    strategy: str = _opt("bayesian", "Search strategy: `random`, `grid`, `bayesian` (Gaussian process), `hyperband` (Keras Tuner), `optuna` (TPE sampler with a median pruner on per-epoch validation loss), `pbt` (Ray Tune's population-based training: `max_trials` trials train side by side; every `perturbation_interval` epochs the worst quarter copy the weights of the best quarter and perturb learning rate, dropout and batch size), `asha` (Ray Tune's asynchronous successive halving: poor trials are stopped early, at 1, 3, 9, ... epochs), or `none` to skip tuning.", STRATEGIES)
    max_trials: int = _opt(10, "Most configurations tried (all strategies except hyperband, whose budget is `epochs`); raising it resumes a finished search with more trials.")
    max_minutes: float = _opt(0, "Time budget of one tuning run in minutes (0 = none): no trial starts after it, the running ones finish, and at least one trial always runs.")
    epochs: int = _opt(20, "Most epochs per trial (hyperband: the largest budget).")
    patience: int = _opt(4, "Early-stopping patience inside each trial.")
    cv_folds: int = _opt(1, "Objective: 1 = the validation loss on the run's validation split (fast); k >= 2 = walk-forward cross-validation: k expanding folds over the training+validation rows, each validated on the next block of `split.val` rows with the scaler refitted on the fold's training rows; the objective is the mean validation loss over the folds.")
    workers: int = _opt(0, "Parallel tuning with Keras Tuner's chief/worker mode: 0 = one process; N = a chief oracle and N worker processes on this machine (not with `optuna`). With `pbt` and `asha`: the most trials training at once (0 = one per CPU of the Ray cluster).")
    ray_address: str = _opt("", "`pbt` and `asha`: the Ray cluster to run on, e.g. `127.0.0.1:6379` or `auto` (a cluster started with `ray start` on this machine); empty = a private Ray instance inside this process on this machine's cores.")
    gpus_per_trial: float = _opt(0, "`pbt` and `asha`: GPUs each trial reserves on the Ray cluster (0 = CPU only; 0.25 = four trials share one GPU).")
    perturbation_interval: int = _opt(2, "`pbt`: epochs between two exploit/explore steps (copying a better trial's weights and perturbing its hyperparameters).")
    space: dict = _opt(DEFAULT_SPACE, "Search space, one entry per hyperparameter (`layers`, `units`, `dropout`, `learning_rate`, `batch_size`, `optimizer`, `normalization`, `lookback`, common to every architecture; `architecture`: a list of architectures to choose from, else fixed at `model.architecture`; and an architecture's own settings as `<architecture>.<setting>`, the fields of its `model.<architecture>` section, e.g. `tcn.kernel_size: [3, 5]` or `nbeats.width: {min: 128, max: 512, step: 128}`, sampled only in the trials of that architecture, which must be searched or fixed): a range `{min, max}` with an optional `step` or `log: true`, a list of `choices`, a single fixed value, or `null` to fix it at its `model.*`/`window.lookback` setting. Entries are laid over the default space, chosen on real series (README, Defaults and why): layers 1-2, units 32-128 step 32, dropout 0-0.3 step 0.1, learning rate 3e-4 to 1e-2 (log), batch size 32/64/128, optimizer adam/rmsprop, normalization last/revin. With `strategy: grid` the entries you leave out search the common grid instead: layers 1/2/3, units 50/100/150, dropout 0.2/0.3/0.4/0.5, learning rate 0.001/0.01/0.1, batch size 32/64/128 (324 points, `max_trials` of them run), the rest fixed.")


@dataclass
class EvaluationConfig:
    seasonal_period: int | str = _opt("auto", "Season length in steps for the seasonal-naive baseline and the MASE scale, or `auto`: the shortest cycle (day, week or year) that the series' time step holds, e.g. 24 for hourly, 7 for daily, 52 for weekly, 12 for monthly data, 1 (persistence) for yearly; the run's config.yaml records the number chosen.")
    ridge_alphas: list = _opt([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], "Regularisation strengths for the linear baseline, chosen on validation.")
    plot_step: int = _opt(1, "Horizon step (1 = next step) shown in the forecast plot.")


@dataclass
class ExplainConfig:
    windows: int = _opt(128, "Number of test windows explained (evenly spaced over the test span).")
    steps: int = _opt(64, "Integration steps (gradient evaluations per window) of Integrated Gradients; with `auto_steps` the most it may use.")
    auto_steps: bool = _opt(False, "Start at 16 steps and double them until the completeness gap is below `tolerance` (at most `steps`).")
    tolerance: float = _opt(0.01, "Completeness gap allowed by `auto_steps`, as a fraction of |f(x) - f(baseline)|.")
    method: str = _opt("midpoint", "Integration rule: Riemann `left`, `right` or `midpoint`, `trapezoid`, or `gausslegendre` (the most accurate per step on smooth models).", ("midpoint", "left", "right", "trapezoid", "gausslegendre"))
    baseline: str = _opt("zeros", "The reference input: `zeros` (scaled zeros: the training mean under z-scoring), `mean` (each channel's training mean in scaled units, also right under min-max scaling), `last` (a flat line at each window's last value: attributes the change within the window), or `noise` (the window plus Gaussian noise, averaged over `noise_samples` draws).", ("zeros", "mean", "last", "noise"))
    noise_samples: int = _opt(8, "Noise baseline: number of noisy baselines averaged.")
    noise_std: float = _opt(0.5, "Noise baseline: standard deviation of the noise in scaled units (training standard deviations).")
    target: str = _opt("step", "What is explained: `step` (the forecast of `horizon_step`) or `mean` (the mean forecast over the horizon).", ("step", "mean"))
    horizon_step: int = _opt(1, "Forecast step whose prediction is explained when `target` is `step` (1 = next step).")
    batch_size: int = _opt(4096, "Interpolated inputs per gradient call (bounds memory).")
    cross_check: bool = _opt(True, "Compare IG with gradient saliency, gradient x input, permutation importance and SHAP's GradientExplainer.")
    shap_windows: int = _opt(32, "Cross-check: windows explained by SHAP (slow: one gradient call per window).")
    permutation_repeats: int = _opt(5, "Cross-check: shuffles per feature or lag block in permutation importance.")
    attention_top_k: int = _opt(5, "Attention analysis (models with attention weights): how many of the most weighted lags (and channels) of the attention and of IG are compared (top-k overlap).")


@dataclass
class UncertaintyConfig:
    method: list = _opt(["conformal", "aci", "quantile", "mc_dropout"], "How the uncertainty chapter makes probabilistic forecasts of the selected model (each method is reported beside the others and beside the conformalised seasonal-naive baseline): `quantile` (the architecture retrained with a non-crossing quantile head and the pinball loss), `mc_dropout` (Monte Carlo dropout: only the dropout layers sample), `deepar` (DeepAR's likelihood sample paths), `conformal` (split conformal on the point forecast's absolute errors, per horizon step, with the finite-sample correction), `aci` (adaptive conformal inference, Gibbs & Candes 2021, walking the test span in time order). Combinations `<base>+conformal` and `<base>+aci` calibrate a probabilistic base: `quantile+conformal` is conformalised quantile regression, `mc_dropout+conformal` normalises the scores by the MC-dropout spread, `deepar+conformal` calibrates DeepAR's sample quantiles.")
    levels: list = _opt([0.8, 0.9, 0.95], "Nominal coverage levels of the central intervals reported (each strictly between 0 and 1).")
    quantiles: list = _opt([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "Quantile levels predicted by quantile heads and used for the CRPS, besides the endpoints of every `levels` interval, 0.25, 0.5 and 0.75 (always added: see `UncertaintyConfig.grid`).")
    mc_samples: int = _opt(100, "Monte Carlo dropout: forward passes (samples) per window.")
    calibration: str = _opt("auto", "Calibration data of the conformal methods, never data the model was fitted on: `val` (validation windows: the model was fitted on training rows), `oof` (out-of-fold residuals of `folds` walk-forward refits over the training+validation rows), or `auto`: `val` when `training.fit_on` is `train`, `oof` when it is `train+val`.", CALIBRATIONS)
    folds: int = _opt(3, "Walk-forward folds of the `oof` calibration (each refits the model on an expanding prefix of the training+validation rows and forecasts the next block).")
    aci_gamma: float = _opt(0.005, "Step size of adaptive conformal inference: how fast the working miscoverage level follows the recent misses (Gibbs & Candes 2021 use 0.005).")
    joint: bool = _opt(True, "Also calibrate whole-path (joint) bands: one score per window, the largest standardised error over the horizon, so that a nominal share of paths lies entirely inside.")
    bootstrap: int = _opt(1000, "Block-bootstrap resamples of the coverage confidence intervals (blocks of `horizon` windows, as overlapping windows share errors).")

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


@dataclass
class AnomalyConfig:
    labels: str = _opt("", "JSON file of labelled anomaly windows, `{file name: [[start, end], ...]}` (the Numenta Anomaly Benchmark's format), looked up by the name of `data.path`; empty = no labels (synthetic runs use the anomalies they injected, see `data.anomalies`).")
    false_alarm_rate: float = _opt(0.01, "Chosen false-alarm rate: an observation is flagged when the conformal p-value of its forecast error is at most this.")
    min_run: int = _opt(1, "Alarm aggregation: flags count only in runs of at least this many consecutive flagged observations.")
    suppress: int = _opt(0, "Alarm aggregation: steps after an alarm during which no new alarm is raised (0 = none).")
    span: str = _opt("test", "Observations scored: the `test` span, or `val+test` (then calibrated on out-of-fold training residuals).", ANOMALY_SPANS)
    explain: int = _opt(4, "Flagged observations whose broken forecast is explained with Integrated Gradients.")
    calibration: str = _opt("fixed", "Calibration scores of the p-values: `fixed` (those of the calibration data only) or `rolling` (the most recent of them and of the scored observations before each one, as many as the calibration data hold: online conformal, which follows a slow drift of the forecast errors; anomalies that pass into the window raise the threshold for a while).", ("fixed", "rolling"))
    smooth: int = _opt(1, "Score of an observation: the root mean square of the standardised step-1 forecast residuals over this many observations up to it (trailing, so the score is known when the observation arrives); 1 = the absolute standardised residual itself. Longer windows let a sustained change of behaviour add up (wide label windows such as NAB's), at the cost of flags that last after a short spike.")
    steps: int = _opt(1, "Forecasts each observation is checked against: those made 1..steps steps before it (the window whose look-back ends j steps earlier forecasts it at horizon step j; capped at `window.horizon`). Each step's errors are standardised by their own calibration median and MAD and the score is the largest of them: 1 = the step-1 forecast only; more lets a slow drift that the step-1 forecast follows still break the older forecasts, at the cost of a slightly higher threshold (the calibration scores are maxima too, so the p-values stay conformal).")


@dataclass
class ServeConfig:
    host: str = _opt("127.0.0.1", "Address `lstmkit serve` listens on (the loopback by default; `0.0.0.0` to accept other machines).")
    port: int = _opt(8000, "TCP port of `lstmkit serve`.")
    db: str = _opt("", "SQLAlchemy URL of the service's database: empty = an embedded SQLite file `service.db` in the state folder (WAL mode), or e.g. `postgresql+psycopg://user@127.0.0.1:5432/lstmkit`.")
    state: str = _opt("", "Folder of the service's state: the SQLite database, every model version's bundle (`models/<version>/`) and the retrain jobs' logs; empty = `<bundle folder>-service` beside the bundle.")
    max_body_bytes: int = _opt(4_000_000, "Largest request body accepted (bytes); larger ones are refused with 413 before they are read.")
    max_rows: int = _opt(100_000, "Most observations one request may append (or one window may hold).")
    batch_max: int = _opt(64, "Request batching: most forecast windows run through the model in one call.")
    batch_wait_ms: float = _opt(2.0, "Request batching, under load only (the last model call ran several windows): how long the first waiting forecast waits for others to join its batch (ms); a forecast reaching an idle model runs at once.")
    metrics_window: int = _opt(168, "Scored forecasts (per horizon step 1) in the rolling error of `/v1/series/{id}/metrics` and of the drift trigger.")
    retrain_every: int = _opt(0, "Retrain trigger: start a retrain job after this many new observations of a series since the last one; 0 = off.")
    drift: bool = _opt(False, "Retrain trigger: start a retrain job when the rolling error of a series leaves its calibrated band (the `drift_level` quantile of the rolling error on the bundle's calibration windows).")
    drift_level: float = _opt(0.99, "Drift trigger: quantile of the calibration rolling errors that bounds the band.")
    holdout: int = _opt(0, "Retraining: most recent stored rows held out to score champion and challenger (neither trains on them; the challenger is promoted only if its error there is lower); 0 = as many as the bundle's validation split.")
    min_history: int = _opt(0, "Retraining: fewest stored rows of a series a retrain job needs; 0 = enough for the held-out span plus one training and one validation window.")


@dataclass
class DeploymentConfig:
    steps: int = _opt(0, "Observations of the test span the deployment chapter replays against the service, one at a time; 0 = all of them.")
    retrain_every: int = _opt(0, "The periodic policy of the chapter retrains every this many observations; 0 = a quarter of the replayed steps plus one (three retrains, none on the last observation, after which nothing is forecast).")
    policies: list = _opt(["static", "periodic", "drift"], "Retraining policies replayed side by side: `static` (the exported model throughout), `periodic` (every `deployment.retrain_every` observations), `drift` (when the rolling error leaves its calibrated band).")
    latency_requests: int = _opt(200, "Single-window forecast requests timed for the chapter's latency percentiles.")


@dataclass
class Config:
    seed: int = _opt(42, "Seed for data generation, shuffling, weight initialisation and tuning.")
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)

    def to_dict(self) -> dict:
        """Plain nested dict of every setting."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the configuration as YAML, atomically."""
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def _field_type(cls: type, name: str) -> Any:
    """Resolved annotation of a dataclass field."""
    return typing.get_type_hints(cls)[name]


def config_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """All valid dotted keys, e.g. `window.lookback`."""
    keys = []
    for f in dataclasses.fields(cls):
        t = _field_type(cls, f.name)
        if dataclasses.is_dataclass(t):
            keys += config_keys(t, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def describe_keys(cls: type = Config, prefix: str = "") -> list[dict]:
    """Every key with its default, allowed values and help text (for the reference page)."""
    rows = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        t = _field_type(cls, f.name)
        if dataclasses.is_dataclass(t):
            rows += describe_keys(t, f"{prefix}{f.name}.")
        else:
            rows.append({"key": f"{prefix}{f.name}", "default": getattr(defaults, f.name),
                         "choices": f.metadata.get("choices"), "help": f.metadata.get("help", "")})
    return rows


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check and convert one leaf value to its declared type."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        if int in args and str in args:  # a number or `auto`
            if isinstance(value, str) and value.strip() != AUTO:
                raise ConfigError(f"{key}: expected an integer or {AUTO!r}, got {value!r}")
            return AUTO if isinstance(value, str) else _coerce(value, int, key)
        return _coerce(value, args[0], key)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if typ in (int, float) and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-3` (no dot) as text
    if typ in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise ConfigError(f"{key}: expected {'an integer' if typ is int else 'a number'}, got {value!r}")
    if typ is int:
        if float(value) != int(value):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if typ is float:
        return value  # keep ints as ints: split sizes use int = row count
    if typ is str:
        if value is None:  # `--set data.date_column=` (nothing after `=`): the empty setting, e.g. detect the column
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if typ is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if typ is list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return value
    return value


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    """Instantiate a config dataclass from a nested dict, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'. Valid keys: " + ", ".join(config_keys()))
    kwargs = {}
    for name, f in names.items():
        if name not in values:
            continue
        t = _field_type(cls, name)
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(t):
            kwargs[name] = _build(t, values[name] or {}, f"{key}.")
        else:
            v = _coerce(values[name], t, key)
            choices = f.metadata.get("choices")
            if choices and v not in choices:
                raise ConfigError(f"{key}: {v!r} is not one of {', '.join(map(str, choices))}")
            kwargs[name] = v
    return cls(**kwargs)


def _validate(cfg: Config) -> Config:
    """Cross-field checks that a single value cannot express."""
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
    for arch in cfg.compare.architectures:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"compare.architectures: {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    if len(set(cfg.compare.architectures)) != len(cfg.compare.architectures):
        raise ConfigError(f"compare.architectures: {cfg.compare.architectures} repeats an architecture")
    if cfg.compare.seeds < 1 or cfg.compare.top_k < 1:
        raise ConfigError("compare.seeds and compare.top_k must be at least 1")
    if cfg.training.steps_per_epoch < 0:
        raise ConfigError(f"training.steps_per_epoch: must be 0 (every window) or positive, got {cfg.training.steps_per_epoch}")
    if cfg.tuning.max_minutes < 0:
        raise ConfigError(f"tuning.max_minutes: must be 0 (no budget) or positive, got {cfg.tuning.max_minutes}")
    if cfg.tuning.cv_folds < 1 or cfg.tuning.workers < 0:
        raise ConfigError("tuning.cv_folds must be at least 1 and tuning.workers at least 0")
    if cfg.tuning.workers and cfg.tuning.strategy == "optuna":
        raise ConfigError("tuning.workers: distributed tuning uses Keras Tuner's chief/worker mode; "
                          "choose random, grid, bayesian or hyperband, or set tuning.workers to 0")
    if cfg.tuning.strategy in RAY_STRATEGIES and cfg.tuning.cv_folds != 1:
        raise ConfigError(f"tuning.cv_folds: {cfg.tuning.strategy} scores every trial epoch by epoch on the validation "
                          f"split; set tuning.cv_folds to 1 (got {cfg.tuning.cv_folds})")
    if cfg.tuning.gpus_per_trial < 0:
        raise ConfigError(f"tuning.gpus_per_trial: must be 0 (CPU only) or positive, got {cfg.tuning.gpus_per_trial}")
    if cfg.tuning.perturbation_interval < 1:
        raise ConfigError(f"tuning.perturbation_interval: must be at least 1 epoch, got {cfg.tuning.perturbation_interval}")
    if cfg.tuning.strategy == "pbt" and cfg.tuning.max_trials < 2:
        raise ConfigError(f"tuning.max_trials: pbt needs a population of at least 2 trials, got {cfg.tuning.max_trials}")
    _validate_uncertainty(cfg)
    _validate_deployment(cfg.deployment)
    for key in ("retrain_every", "holdout", "min_history"):  # retraining (lstmkit.service.retrain)
        if getattr(cfg.serve, key) < 0:
            raise ConfigError(f"serve.{key}: must be 0 (off/automatic) or positive, got {getattr(cfg.serve, key)}")
    if cfg.serve.metrics_window < 1:
        raise ConfigError(f"serve.metrics_window: must be at least 1, got {cfg.serve.metrics_window}")
    if not 0 < cfg.serve.drift_level <= 1:
        raise ConfigError(f"serve.drift_level: must be in (0, 1], got {cfg.serve.drift_level}")
    from lstmkit.search_space import merge_space, parse_space

    cfg.tuning.space = merge_space(cfg.tuning.space, cfg.tuning.strategy)
    space = parse_space(cfg.tuning.space, cfg)
    if cfg.tuning.strategy == "grid":
        space.grid_size()
    if cfg.tuning.strategy == "pbt" and not space.mutable():
        raise ConfigError("tuning.space: pbt perturbs learning_rate, dropout and batch_size while trials train, but the "
                          "space fixes all three; give at least one of them a range or choices")
    if not 1 <= cfg.explain.horizon_step <= cfg.window.horizon:
        raise ConfigError(f"explain.horizon_step: must be between 1 and window.horizon ({cfg.window.horizon})")
    if not 1 <= cfg.evaluation.plot_step <= cfg.window.horizon:
        raise ConfigError(f"evaluation.plot_step: must be between 1 and window.horizon ({cfg.window.horizon})")
    from lstmkit.datasets import REGISTRY

    sources = ("synthetic", "csv", *REGISTRY)
    if cfg.data.source not in sources:
        raise ConfigError(f"data.source: {cfg.data.source!r} is not one of {', '.join(sources)}")
    if cfg.data.source == "csv" and not cfg.data.path:
        raise ConfigError("data.path: required when data.source is csv")
    return cfg


DEPLOYMENT_POLICIES = ("static", "periodic", "drift")


def _validate_deployment(d: DeploymentConfig) -> None:
    """Checks of the `deployment.*` settings."""
    for key, v in {"deployment.steps": d.steps, "deployment.retrain_every": d.retrain_every}.items():
        if v < 0:
            raise ConfigError(f"{key}: must be 0 (automatic) or positive, got {v}")
    if d.latency_requests < 1:
        raise ConfigError(f"deployment.latency_requests: must be at least 1, got {d.latency_requests}")
    if not isinstance(d.policies, list) or not d.policies:
        raise ConfigError(f"deployment.policies: a non-empty list of {', '.join(DEPLOYMENT_POLICIES)}, got {d.policies!r}")
    for p in d.policies:
        if p not in DEPLOYMENT_POLICIES:
            raise ConfigError(f"deployment.policies: {p!r} is not one of {', '.join(DEPLOYMENT_POLICIES)}")
    if len(set(d.policies)) != len(d.policies):
        raise ConfigError(f"deployment.policies: {d.policies} repeats a policy")


def _validate_uncertainty(cfg: Config) -> None:
    """Checks of the `uncertainty.*`, `anomalies.*` and `model.deepar.*` settings."""
    u, a = cfg.uncertainty, cfg.anomalies
    for m in u.method:
        parts = str(m).split("+")
        ok = (len(parts) == 1 and parts[0] in UNCERTAINTY_METHODS) or (
            len(parts) == 2 and parts[0] in ("quantile", "mc_dropout", "deepar") and parts[1] in ("conformal", "aci"))
        if not ok:
            raise ConfigError(f"uncertainty.method: {m!r} is not a method; methods are {', '.join(UNCERTAINTY_METHODS)} "
                              "or a base (quantile, mc_dropout, deepar) joined to conformal or aci by `+`, e.g. quantile+conformal")
    if not u.levels or any(not isinstance(v, (int, float)) or not 0 < v < 1 for v in u.levels):
        raise ConfigError(f"uncertainty.levels: each level must be a number strictly between 0 and 1, got {u.levels}")
    if any(not isinstance(v, (int, float)) or not 0 < v < 1 for v in u.quantiles):
        raise ConfigError(f"uncertainty.quantiles: each quantile level must be strictly between 0 and 1, got {u.quantiles}")
    for key, v in {"uncertainty.mc_samples": u.mc_samples, "uncertainty.folds": u.folds,
                   "uncertainty.bootstrap": u.bootstrap, "anomalies.min_run": a.min_run, "anomalies.smooth": a.smooth,
                   "anomalies.steps": a.steps,
                   "model.deepar.samples": cfg.model.deepar.samples}.items():
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


def parse_override(text: str) -> tuple[str, Any]:
    """Split a `KEY=VALUE` override; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form KEY=VALUE")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-3` (no dot) as text
    return key.strip(), value


def apply_overrides(values: dict, overrides: dict[str, Any]) -> dict:
    """Set dotted keys in a nested dict, rejecting keys that do not exist."""
    valid = set(config_keys())
    mappings = tuple(f"{row['key']}." for row in describe_keys() if isinstance(row["default"], dict))
    out = yaml.safe_load(yaml.safe_dump(values))  # deep copy of plain data
    for key, value in overrides.items():
        if key not in valid and not key.startswith(mappings):  # inside a mapping, e.g. tuning.space.units.max
            raise ConfigError(f"unknown config key '{key}'. Valid keys: " + ", ".join(config_keys()))
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            if node.get(p) is None:  # a section missing or left empty in the file
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: parent is not a mapping")
        node[leaf] = value
    return out


def from_dict(values: dict | None, overrides: dict[str, Any] | None = None) -> Config:
    """Validated Config from a nested dict plus dotted overrides."""
    values = apply_overrides(values or {}, overrides or {})
    return _validate(_build(Config, values))


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config file (or the defaults when None) and apply dotted overrides."""
    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            values = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        try:
            return from_dict(values, overrides)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    return from_dict(values, overrides)
