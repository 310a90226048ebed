"""The service's endpoints, one router per resource: health, models, series, forecast, retraining jobs."""
