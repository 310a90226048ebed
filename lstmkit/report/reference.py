"""Published results on standard benchmarks, to report beside a run that follows the same protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit.config import Config
from lstmkit.stages.evaluation import model_entries

if TYPE_CHECKING:
    import pandas as pd


PATCHTST = ("Nie et al., \"A Time Series is Worth 64 Words: Long-term Forecasting with Transformers\", ICLR 2023 "
            "(PatchTST/42), univariate, look-back 336")
LTSF_LINEAR = ("Zeng et al., \"Are Transformers Effective for Time Series Forecasting?\", AAAI 2023 "
               "(LTSF-Linear), univariate table, look-back 336")

# ETT protocol: rows train [0, 8640), validation [8640, 11520), test [11520, 14400); scaled MSE/MAE, stride 1.
ETT_SPLIT = (8640, 2880, 2880)
ETT_LOADS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")


@dataclass(frozen=True)
class Published:
    """One published test figure: dataset, mode (S or MS), horizon, model, scaled MSE and MAE, and its source."""

    dataset: str
    mode: str
    horizon: int
    model: str
    mse: float
    mae: float | None  # None: the source gives no MAE for this setting
    source: str


PUBLISHED = (
    Published("etth2", "S", 96, "NLinear", 0.129, 0.278, LTSF_LINEAR),
    Published("etth2", "S", 96, "PatchTST/42", 0.129, None, PATCHTST),
    Published("etth2", "S", 96, "DLinear", 0.131, 0.279, LTSF_LINEAR),
    Published("etth2", "S", 96, "Linear", 0.133, 0.283, LTSF_LINEAR),
)


def ett_dataset(cfg: Config) -> str | None:
    """The ETT dataset a run evaluates with the standard protocol (None when it does not follow it)."""
    split = (cfg.split.train, cfg.split.val, cfg.split.test)
    if split != ETT_SPLIT or cfg.data.target != "OT":
        return None
    name = cfg.data.source if cfg.data.source not in ("csv", "synthetic") else Path(cfg.data.path or "").stem.lower()
    return name if name in ("etth1", "etth2", "ettm1", "ettm2") else None


def mode(cfg: Config) -> str | None:
    """S (target only) or MS (the six loads and the target -> the target); None for other inputs."""
    features = [f for f in cfg.data.features if f != cfg.data.target]
    if not features:
        return "S"
    return "MS" if sorted(features) == sorted(ETT_LOADS) else None


def published_for(cfg: Config) -> list[Published]:
    """Published figures comparable with this run: same dataset, mode and horizon under the ETT protocol."""
    dataset, m = ett_dataset(cfg), mode(cfg)
    return [p for p in PUBLISHED if p.dataset == dataset and p.mode == m and p.horizon == cfg.window.horizon]


def comparison_table(metrics: dict, published: list[Published], lookback: int) -> pd.DataFrame:
    """This run's scaled test MSE/MAE (models, ensemble and baselines) beside the published figures, best first."""
    import pandas as pd


    rows = [{"forecaster": f"{name} (this run)", "mse": m["scaled"]["mse"], "mae": m["scaled"]["mae"],
             "source": f"this run, look-back {lookback}"} for name, m in {**model_entries(metrics), **metrics["baselines"]}.items()]
    rows += [{"forecaster": f"{p.model} (published)", "mse": p.mse, "mae": p.mae, "source": p.source} for p in published]
    return pd.DataFrame(rows).sort_values("mse").set_index("forecaster").round({"mse": 4, "mae": 4})
