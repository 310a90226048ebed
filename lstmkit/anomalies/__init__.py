"""Anomaly detection from forecast errors: causal scores, conformal p-values and alarm aggregation (`scores`),
label windows (`labels`) and detection metrics beside random scores (`metrics`).
"""
