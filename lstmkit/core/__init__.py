"""The bottom layer: what every other part of lstmkit uses and that uses nothing of lstmkit.

The one error root (`errors`), atomic writes and JSON artifacts (`atomic`, `jsonable`), progress events of long
stages (`progress`), time-step helpers (`timeindex`), interval level labels (`labels`) and small system helpers
(`net`). Importable without TensorFlow, pandas-free where it can be.
"""
