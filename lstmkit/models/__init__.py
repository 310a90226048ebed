"""The models layer: every forecaster behind one contract.

`base.Forecaster` is the contract (public methods validate, private `_fit`/`_predict` work, capabilities are tags);
`spec.ModelSpec` the hyperparameters of a network; `baselines/` the statistical and linear baselines, one per file;
`neural/` the networks, one architecture per file, trained through `neural.forecaster.NeuralForecaster`;
`metrics` the point-forecast measures every model is scored by; `registry` every registered forecaster and
`load(folder)`. Importing this package, `base`, `spec` or `baselines` does not import Keras; `neural` and `registry` do.
"""
