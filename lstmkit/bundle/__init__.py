"""The inference bundle: its format (`format`: files, manifest, version, verification, writing) and its runtime
(`runtime`: load a bundle and forecast from a frame or windows). What the service loads; the export of a run
folder's model lives with the stages (`lstmkit.stages.export`).
"""
