"""Configuration: one typed tree of pydantic v2 models, read from a YAML profile and dotted `--set` overrides.

`settings` declares every section and key (type, default, meaning) and the checks across keys; `types` the value
types and their error messages; `loader` reads YAML and overrides into a validated `Config`; `reference` lists the keys
for `lstmkit config` and the report. An architecture's own settings are declared in its file under
`lstmkit/models/neural/`, the search space's schema in `lstmkit.tuning.space`.
"""

from lstmkit.config.loader import apply_overrides, format_error, from_dict, load_config, parse_override, replace
from lstmkit.config.reference import config_keys, describe_keys, unknown_key
from lstmkit.config.settings import (
    ANOMALY_SPANS,
    CALIBRATIONS,
    DEPLOYMENT_POLICIES,
    ENSEMBLES,
    FIT_ON,
    NORMALIZATIONS,
    OPTIMIZERS,
    RAY_STRATEGIES,
    STRATEGIES,
    UNCERTAINTY_BASES,
    UNCERTAINTY_METHODS,
    AnomalyConfig,
    CompareConfig,
    Config,
    DataConfig,
    DeploymentConfig,
    EvaluationConfig,
    ExplainConfig,
    ModelConfig,
    ScalingConfig,
    ServeConfig,
    SplitConfig,
    TrainingConfig,
    TuningConfig,
    UncertaintyConfig,
    WindowConfig,
)
from lstmkit.config.types import AUTO, EXPONENT, Section
from lstmkit.core.errors import ConfigError

__all__ = ["ANOMALY_SPANS", "AUTO", "CALIBRATIONS", "DEPLOYMENT_POLICIES", "ENSEMBLES", "EXPONENT", "FIT_ON",
           "NORMALIZATIONS", "OPTIMIZERS", "RAY_STRATEGIES", "STRATEGIES", "UNCERTAINTY_BASES", "UNCERTAINTY_METHODS",
           "AnomalyConfig", "CompareConfig", "Config", "ConfigError", "DataConfig", "DeploymentConfig",
           "EvaluationConfig", "ExplainConfig", "ModelConfig", "ScalingConfig", "Section", "ServeConfig", "SplitConfig",
           "TrainingConfig", "TuningConfig", "UncertaintyConfig", "WindowConfig", "apply_overrides", "config_keys",
           "describe_keys", "format_error", "from_dict", "load_config", "parse_override", "replace", "unknown_key"]
