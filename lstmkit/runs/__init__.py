"""Runs: the run folder, the one place that names every artifact (`folder`), its lock (`lock`) and the papermill
pipeline that executes the numbered notebooks into it (`pipeline`).
"""
