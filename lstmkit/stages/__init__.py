"""The stages: one computing module per chapter (`preprocessing`, `tuning`, `training`, `evaluation`,
`explainability`, `uncertainty`, `anomalies`, `deployment`; the data chapter calls the data layer directly), each reading and writing the run folder through
`lstmkit.runs.folder.RunFolder`; the checks made before a run starts (`checks`); and the export of a run's selected model
as an inference bundle (`export`). Computing only: no plotting, no report text.
"""
