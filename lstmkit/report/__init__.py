"""The report: chapter text and tables (`text`), the figures (`plots/`, one module per chapter), published
figures to compare with (`reference`) and the Jupyter Book built from a run (`book`).
"""
