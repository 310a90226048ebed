"""Hyperparameter search: the search space (`space`), one trial trained and scored (`objective`), the trials table
(`trials`) and the run's results (`results`), and the strategies (`backends/`: Keras Tuner, Optuna, Ray Tune, Keras
Tuner's chief/worker processes) behind one entry point (`search.tune`).
"""
