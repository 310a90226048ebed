"""The forecasting service (`lstmkit serve`): a FastAPI application over an inference bundle (`lstmkit.bundle.format`).

- `schemas`: pydantic v2 request and response models (the OpenAPI document).
- `storage`: observations, issued forecasts, jobs and model versions in SQLite (WAL) or PostgreSQL (SQLAlchemy).
- `registry`: the model versions on disk and the one that serves (atomic swap, rollback).
- `inference`: request batching of forecast windows through the serving model.
- `retrain`: retrain jobs in a separate process (champion/challenger), and their triggers.
- `app`: the FastAPI application and `lstmkit serve`.
"""
