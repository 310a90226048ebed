"""Every registered forecaster, and `load(folder)` for any of them.

Forecaster classes register themselves when their module is imported (`Forecaster.__init_subclass__`); this module
imports every one (the baselines, and the neural forecaster that trains any architecture of `models.neural`), so that
a saved forecaster of any kind loads and the contract test can run over all of them. It imports Keras.
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.core.atomic import read_json
from lstmkit.core.errors import ForecasterError
from lstmkit.models import baselines as baselines
from lstmkit.models.base import KINDS, MANIFEST, Forecaster
from lstmkit.models.neural.forecaster import NeuralForecaster as NeuralForecaster


def kinds() -> dict[str, type[Forecaster]]:
    """Every registered forecaster class by its name, e.g. `Persistence`, `LinearWindow`, `NeuralForecaster`."""
    return dict(KINDS)


def load(path: Path) -> Forecaster:
    """A forecaster saved by `Forecaster.save(path)`, ready to predict."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise ForecasterError(f"{path}: not a saved forecaster (no {MANIFEST}); save one with Forecaster.save")
    manifest = read_json(manifest_file)
    cls = KINDS.get(manifest.get("kind"))
    if cls is None:
        raise ForecasterError(f"{manifest_file}: unknown forecaster kind {manifest.get('kind')!r}; kinds are: "
                              f"{', '.join(sorted(KINDS))}")
    forecaster = cls(**manifest["init"])
    for k, v in manifest["state"].items():
        setattr(forecaster, k, v)
    forecaster._load(path)
    return forecaster
