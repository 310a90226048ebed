"""The data layer: a series from its source to leak-free windows.

Loading and repairs of CSV files (`loading`), the synthetic series with known ground truth (`synthetic`), named
datasets and their downloads (`datasets`), the stored series of a run (`series`), seasonal periods and
decomposition (`seasonality`), and chronological splits, scalers fitted on training rows and windows whose targets
never cross a split (`windows`). Imports core and config only; no model, no Keras.
"""
