"""The search strategies, each behind `search.search`: Keras Tuner's random, grid, bayesian and hyperband
(`keras_tuner`), Optuna's TPE (`optuna`), Ray Tune's pbt and asha (`ray`), and Keras Tuner's chief/worker processes
(`distributed`).
"""
