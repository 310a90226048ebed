"""Probabilistic forecasts of any forecaster: split and adaptive conformal calibration (`conformal`), a
forecaster's outputs on a set of windows (`forecasts`), conformal calibration of those outputs by base (`calibration`)
and the interval and distribution measures they are scored by (`interval_metrics`).
"""
