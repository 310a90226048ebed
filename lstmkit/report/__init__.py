"""The report: each chapter's prose and display tables (`data`, `evaluation`, `explainability`, `uncertainty`,
`anomalies`, `deployment`), its figures (`plots/`, one module per chapter), published figures to compare with
(`reference`), and the Jupyter Book built from a run (`book`, with its Sphinx extension `sphinxext`). It reads what the
stages computed and computes nothing of its own.
"""
