"""ModelSpec: the hyperparameters of one neural forecaster, the shared ones and its architecture's own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lstmkit.config import Config
from lstmkit.models.neural import architectures

COMMON = ("layers", "units", "dropout", "learning_rate", "optimizer", "batch_size", "normalization")


@dataclass
class ModelSpec:
    """Architecture, shared hyperparameters (config `model.*`) and the architecture's own (`model.<architecture>`)."""

    architecture: str = "lstm"
    layers: int = 1
    units: int = 64
    dropout: float = 0.2
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    normalization: str = "none"
    lookback: int | None = None  # None: the run's window.lookback
    quantiles: list = field(default_factory=list)  # quantile levels of a quantile head (pinball loss); empty: point
    options: dict = field(default_factory=dict)  # the architecture's own settings, e.g. {"kernel_size": 3}

    def __post_init__(self):
        architectures.module(self.architecture)  # a ConfigError naming the known ones

    def to_dict(self) -> dict:
        """Flat JSON-ready form: the architecture's own settings as `<architecture>.<name>` keys."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "options"}
        return d | {f"{self.architecture}.{k}": v for k, v in self.options.items()}

    @classmethod
    def from_dict(cls, d: dict, defaults: dict | None = None) -> ModelSpec:
        """Build from a flat dict (to_dict's form); `<architecture>.<name>` keys of other architectures are ignored.

        `defaults`: the architecture's own settings that `d` does not name (e.g. from the configuration).
        """
        arch = d.get("architecture", "lstm")
        prefix = f"{arch}."
        options = dict(defaults or {}) | {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        plain = {k: d[k] for k in (*COMMON, "architecture", "lookback", "quantiles") if k in d}
        return cls(**plain, options=options)

    @classmethod
    def from_config(cls, cfg: Config, architecture: str | None = None, values: dict | None = None) -> ModelSpec:
        """The spec of `architecture` (default model.architecture) from the configuration, `values` laid over it."""
        arch = architecture or (values or {}).get("architecture") or cfg.model.architecture
        base = {k: getattr(cfg.model, k) for k in COMMON} | {"lookback": cfg.window.lookback}
        return cls.from_dict(base | (values or {}) | {"architecture": arch}, defaults=architectures.config_options(cfg, arch))
