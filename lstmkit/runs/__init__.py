"""Runs: the run folder, the one place that names every artifact (`folder`), its lock (`lock`) and the catalogue of
the numbered notebooks, one per stage (`notebooks`). A low layer (beside `data`): every stage reads and writes
through it, and the service's retraining job writes a bundle the way a run does. The papermill pipeline that executes
the notebooks into a run folder is the command line's (`lstmkit.cli.pipeline`).
"""
