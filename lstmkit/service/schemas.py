"""Request and response models of the forecasting service (pydantic v2; they make the OpenAPI document).

Every model forbids unknown fields and non-finite numbers. The models that depend on the bundle (its columns, its
horizon, its interval levels) are built per application by `api_models`, so the OpenAPI document names the exact
columns an observation must hold and the exact `lower_<level>`/`upper_<level>` keys a forecast row carries.
Timestamps travel as ISO-8601 strings (`2024-01-01T00:00:00`, optionally with `Z` or an offset, converted to UTC and
stored without a zone); they are parsed into pandas Timestamps while the request is validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from lstmkit.core.labels import level_label

SERIES_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
# ISO-8601 date or date-time (years 1700-2259, inside pandas' range), optional fraction and zone; [0-9], not \d
# (Unicode-aware in pydantic's regex). Impossible dates (02-30) pass the pattern and are refused when parsed.
TIMESTAMP_PATTERN = (r"^(?:1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
                     r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?)?"
                     r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$")
MAX_BATCH = 1024  # most forecast requests in one POST /v1/forecast/batch

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

SeriesId = Annotated[str, StringConstraints(pattern=SERIES_ID_PATTERN)]
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
OptionalFloat = Annotated[float | None, Field(allow_inf_nan=False)]


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 string as a datetime without zone (zoned times converted to UTC); ValueError if invalid.

    datetime.fromisoformat is the fast path (a window holds hundreds of timestamps; fractions are kept to the
    microsecond); what it cannot read goes to pandas for its error message."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        try:
            ts = pd.Timestamp(text)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"{text!r} is not a valid ISO-8601 timestamp (e.g. 2024-01-01T00:00:00): {e}") from None
        if ts is pd.NaT:
            raise ValueError(f"{text!r} is not a valid ISO-8601 timestamp (e.g. 2024-01-01T00:00:00)") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


Timestamp = Annotated[str, StringConstraints(pattern=TIMESTAMP_PATTERN), AfterValidator(parse_timestamp)]


def format_timestamp(ts: pd.Timestamp) -> str:
    """A timestamp as the ISO-8601 string the service answers with (`2024-01-01T05:00:00`)."""
    return pd.Timestamp(ts).isoformat()


def _field_name(key: str) -> str:
    """A Python identifier for a JSON key (a column or level name), used with the key as its alias."""
    name = re.sub(r"\W", "_", key)
    return f"f_{name}"


# ---------------------------------------------------------------- static models


class ErrorItem(BaseModel):
    """One validation error: where (`loc`, e.g. ["body", "columns", "x1", 3]) and what."""

    model_config = STRICT
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a message, or the list of validation errors naming their fields."""

    model_config = STRICT
    detail: str | list[ErrorItem]


class Health(BaseModel):
    """`GET /healthz`: the process answers."""

    model_config = STRICT
    status: str


class Ready(BaseModel):
    """`GET /readyz`: the serving model is loaded and warmed up."""

    model_config = STRICT
    status: str
    model_version: str


class ModelInfo(BaseModel):
    """One model version of the registry."""

    model_config = STRICT
    version: str
    serving: bool
    status: str
    parent: str | None = None
    created: str | None = None
    cutoff: str | None = None
    path: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="test metrics recorded with the version (non-finite values as null)")


class ModelsResponse(BaseModel):
    """`GET /v1/models`: every version and the one that serves."""

    model_config = STRICT
    serving: str
    columns: list[str]
    target: str
    lookback: int
    horizon: int
    freq: str
    levels: list[float]
    models: list[ModelInfo]


class AppendResponse(BaseModel):
    """`POST /v1/series/{id}/observations`: what the append stored."""

    model_config = STRICT
    series_id: str
    stored: int = Field(description="new observations stored")
    duplicates: int = Field(description="observations already stored with the same values (idempotent re-sends)")
    last: str | None = Field(description="last stored timestamp of the series")
    total: int = Field(description="observations stored for the series")
    retrain_job: str | None = Field(None, description="id of a retrain job this append triggered, if any")


class RetrainRequest(BaseModel):
    """`POST /v1/retrain`: retrain a challenger on a series' stored history."""

    model_config = STRICT
    series_id: SeriesId
    reason: Annotated[str, StringConstraints(max_length=200)] = "request"


class JobAccepted(BaseModel):
    """`POST /v1/retrain`: the job that will run."""

    model_config = STRICT
    job_id: str


class Job(BaseModel):
    """`GET /v1/jobs/{id}`: a retrain job's state."""

    model_config = STRICT
    id: str
    kind: str
    status: str = Field(description="queued | running | succeeded | failed")
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RollbackResponse(BaseModel):
    """`POST /v1/models/rollback`: the version that serves now."""

    model_config = STRICT
    model_version: str
    previous: str


class ErrorScore(BaseModel):
    """Mean absolute and root mean squared error over `n` scored forecasts (null when none), original units."""

    model_config = STRICT
    n: int
    mae: OptionalFloat = None
    rmse: OptionalFloat = None


class StepMetrics(BaseModel):
    """Errors of one horizon step: the service's forecasts beside the baselines at the same origins."""

    model_config = STRICT
    step: int
    model: ErrorScore
    seasonal_naive: ErrorScore
    persistence: ErrorScore
    coverage: dict[str, OptionalFloat] = Field(description="share of actuals inside the issued interval, per level (\"80\": 0.81)")


class DriftInfo(BaseModel):
    """The drift band: the calibrated bound of the rolling step-1 MAE."""

    model_config = STRICT
    window: int
    level: float
    band: OptionalFloat
    rolling_mae: OptionalFloat
    outside: bool


class MetricsResponse(BaseModel):
    """`GET /v1/series/{id}/metrics`: rolling error of the forecasts the service issued for a series."""

    model_config = STRICT
    series_id: str
    model_version: str = Field(description="the version serving now")
    observations: int
    scored: int = Field(description="issued forecast values whose observation has arrived (all steps)")
    window: int = Field(description="most recent scored forecasts per step taken into account (serve.metrics_window)")
    steps: list[StepMetrics]
    drift: DriftInfo
    retrain_job: str | None = None


# ---------------------------------------------------------------- models that depend on the bundle


@dataclass
class ApiModels:
    """The request/response models of one application (built from its bundle's columns, levels and horizon)."""

    Observations: type[BaseModel]
    Window: type[BaseModel]
    ForecastRequest: type[BaseModel]
    ForecastRow: type[BaseModel]
    ForecastResponse: type[BaseModel]
    BatchRequest: type[BaseModel]
    BatchResponse: type[BaseModel]
    level_keys: list[str]


def _check_frame(data: Any) -> Any:
    """Equal lengths of `timestamps` and every column (naming the column that differs); increasing timestamps."""
    if not isinstance(data, BaseModel):
        return data
    n = len(data.timestamps)
    for name, values in data.columns.model_dump(by_alias=True).items():
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values but there are {n} timestamps")
    ts = data.timestamps
    for i in range(1, n):
        if ts[i] <= ts[i - 1]:
            raise ValueError(f"timestamps must increase: timestamps[{i}] ({ts[i]}) is not after timestamps[{i - 1}] ({ts[i - 1]})")
    return data


def api_models(columns: list[str], levels: list[float], horizon: int, max_rows: int) -> ApiModels:
    """Build the bundle-dependent models: observation/window bodies with exactly `columns`, rows with the level keys."""
    values = Annotated[list[FiniteFloat], Field(min_length=1, max_length=max_rows)]
    known = ", ".join(columns)

    def unknown_columns(cls: type[BaseModel], data: Any) -> Any:
        """A clear message for columns the bundle does not know or lacks (before field validation)."""
        if isinstance(data, dict):
            extra = [k for k in data if k not in columns]
            if extra:
                raise ValueError(f"unknown column(s) {', '.join(map(repr, extra))}; the model's columns are {known}")
            missing = [c for c in columns if c not in data]
            if missing:
                raise ValueError(f"missing column(s) {', '.join(map(repr, missing))}; the model's columns are {known}")
        return data

    col_fields = {_field_name(c): (values, Field(alias=c)) for c in columns}
    Columns = create_model("Columns", __config__=STRICT,
                           __validators__={"names": model_validator(mode="before")(unknown_columns)}, **col_fields)
    Columns.__doc__ = f"One list of values per column of the model ({known}), as long as `timestamps`."
    stamps = Annotated[list[Timestamp], Field(min_length=1, max_length=max_rows)]
    frame_check = {"lengths": model_validator(mode="after")(lambda self: _check_frame(self))}
    Observations = create_model("Observations", __config__=STRICT, __validators__=frame_check,
                                timestamps=(stamps, Field(description="ISO-8601 timestamps on the model's time step, increasing")),
                                columns=(Columns, ...))
    Observations.__doc__ = "Observations to append to a series: timestamps and one list of values per column."
    Window = create_model("Window", __config__=STRICT, __validators__=frame_check,
                          timestamps=(stamps, Field(description="ISO-8601 timestamps on the model's time step, increasing")),
                          columns=(Columns, ...))
    Window.__doc__ = "A window to forecast from: at least the model's look-back of rows (the last ones are used)."

    def exactly_one(self: Any) -> Any:
        """Exactly one of series_id and window."""
        if (self.series_id is None) == (self.window is None):
            raise ValueError("give exactly one of series_id (forecast from its stored observations) or window")
        return self

    one_of = {"oneOf": [{"required": ["series_id"]}, {"required": ["window"]}]}
    ForecastRequest = create_model(
        "ForecastRequest", __config__=ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=one_of),
        __validators__={"one": model_validator(mode="after")(exactly_one)},
        series_id=(SeriesId | None, Field(None, description="forecast from the last look-back rows stored for this series")),
        window=(Window | None, Field(None, description="forecast from these rows instead")),
        horizon=(int, Field(horizon, ge=1, le=horizon, strict=True, description=f"steps ahead, 1..{horizon}")))
    ForecastRequest.__doc__ = "A forecast from a stored series or from a window in the body (exactly one of them)."

    keys = [level_label(v) for v in levels]
    row_fields: dict[str, Any] = {"timestamp": (str, Field(description="ISO-8601 timestamp forecast")),
                                  "mean": (FiniteFloat, Field(description="point forecast, original units"))}
    for k in keys:
        row_fields[_field_name(f"lower_{k}")] = (FiniteFloat, Field(alias=f"lower_{k}", description=f"lower bound of the {k}% interval"))
        row_fields[_field_name(f"upper_{k}")] = (FiniteFloat, Field(alias=f"upper_{k}", description=f"upper bound of the {k}% interval"))
    ForecastRow = create_model("ForecastRow", __config__=ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True),
                               **row_fields)
    ForecastRow.__doc__ = "One forecast step: timestamp, point forecast and interval bounds, original units."
    ForecastResponse = create_model("ForecastResponse", __config__=STRICT,
                                    model_version=(str, Field(description="the model version that answered")),
                                    forecast=(list[ForecastRow], ...))
    ForecastResponse.__doc__ = "A forecast and the model version that made it."
    BatchRequest = create_model("BatchForecastRequest", __config__=STRICT,
                                requests=(Annotated[list[ForecastRequest], Field(min_length=1, max_length=MAX_BATCH)], ...))
    BatchRequest.__doc__ = f"Up to {MAX_BATCH} forecast requests answered together (in order)."
    BatchResponse = create_model("BatchForecastResponse", __config__=STRICT, forecasts=(list[ForecastResponse], ...))
    BatchResponse.__doc__ = "The forecasts of a batch, in the order of its requests."
    return ApiModels(Observations, Window, ForecastRequest, ForecastRow, ForecastResponse, BatchRequest, BatchResponse, keys)
