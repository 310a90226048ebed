"""Model registry of the service: every model version's bundle in `<state>/models/<version>/` and the storage's models
table (version, parent, created, metrics, status), with the serving bundle swapped in without downtime.

- On start, leftover `<state>/models/.tmp-*` folders (a retrain job killed while it trained or wrote its bundle) are
  removed; the storage's champion is served when its folder loads (a restarted service keeps its promoted model),
  else the initial bundle is copied in (into `.tmp-<uuid>`, then renamed: never half a bundle under a version name)
  and registered as champion. An initial bundle the models table does not know (a newly exported model given to a
  service that served another) replaces the champion, with the old champion as its parent (rollback returns to it).
- `current()` is a plain attribute read. `promote` and `rollback` load (verifying every file against the manifest)
  and warm up the new bundle first, then replace the reference under a lock: a request in flight keeps the bundle it
  took, and a bundle that fails verification is never served (RegistryError; the champion stays).
- `rollback()` goes back to the current version's parent (the champion it replaced), which is recorded in the models
  table and so survives restarts; the version rolled back from is marked `retired`. The initial bundle has no parent:
  rolling back from it is a RegistryError."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit.bundle.format import verify
from lstmkit.bundle.runtime import load_bundle
from lstmkit.core.errors import BundleError, RegistryError

if TYPE_CHECKING:
    from lstmkit.bundle.runtime import Bundle
    from lstmkit.service.storage import Storage


log = logging.getLogger("lstmkit.service")

TMP_PREFIX = ".tmp-"  # work folders of copies and retrain jobs inside <state>/models/; removed on start


def models_dir(state: Path) -> Path:
    """The folder of every model version's bundle: `<state>/models`."""
    return Path(state) / "models"


def remove_leftovers(models: Path) -> list[str]:
    """Remove the `.tmp-*` folders left by a killed copy or retrain job; returns their names."""
    removed = []
    if models.is_dir():
        for p in sorted(models.glob(f"{TMP_PREFIX}*")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


class Registry:
    """Model versions in `<state>/models/<version>/` and the storage's models table; serves one champion."""

    def __init__(self, state: Path, storage: Storage, initial_bundle: Path):
        """Clean leftovers, then serve the stored champion when its folder loads, else register the initial bundle."""
        self.state = Path(state)
        self.models = models_dir(self.state)
        self.models.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self._swap = threading.Lock()  # one promote/rollback at a time; readers never take it
        removed = remove_leftovers(self.models)
        if removed:
            log.warning("removed leftover work folders of an interrupted job: %s", ", ".join(removed))
        known = {m["version"] for m in storage.models()}
        champion = storage.champion()
        if self._version_of(Path(initial_bundle)) in known or champion is None:
            bundle = self._stored_champion()  # a restart: keep serving the promoted model
            parent = None
        else:  # a bundle this service has never seen: the operator exported a new model; it replaces the champion
            bundle, parent = None, champion["version"]
        if bundle is None:
            bundle = self._register_initial(Path(initial_bundle), parent)
        bundle.warm_up()
        self._bundle = bundle

    # ------------------------------------------------------------ start

    def _stored_champion(self) -> Bundle | None:
        """The storage's champion when its folder loads and verifies, else None (with a warning saying why)."""
        champion = self.storage.champion()
        if not champion:
            return None
        try:
            return self._load(champion["version"])
        except RegistryError as e:
            log.warning("the stored champion cannot be served (%s); serving the initial bundle", e)
            return None

    @staticmethod
    def _version_of(source: Path) -> str:
        """The version of a bundle folder, its files checked against its manifest (RegistryError when they differ)."""
        try:
            return verify(source)["version"]
        except BundleError as e:
            raise RegistryError(f"the initial bundle {source} cannot be served: {e}") from None

    def _register_initial(self, source: Path, parent: str | None = None) -> Bundle:
        """Copy the initial bundle into the model store (atomically: .tmp-<uuid>, then rename) and make it champion;
        `parent`: the champion it replaces (a new bundle given to a service that served another one)."""
        version = self._version_of(source)  # files checked against the manifest; the model loads once, below
        target = self.models / version
        if not self._loads(target):
            shutil.rmtree(target, ignore_errors=True)
            tmp = self.models / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            shutil.copytree(source, tmp)
            tmp.rename(target)
        bundle = self._load(version)
        known = {m["version"] for m in self.storage.models()}
        if bundle.version not in known:
            self.storage.add_model(bundle.version, str(target), parent, bundle.metrics, "retired")
        self.storage.set_champion(bundle.version)
        return bundle

    @staticmethod
    def _loads(path: Path) -> bool:
        """Whether a folder holds a bundle whose files match its manifest (the model itself is loaded by `_load`)."""
        if not path.is_dir():
            return False
        try:
            verify(path)
            return True
        except BundleError:
            return False

    def _load(self, version: str) -> Bundle:
        """Load and verify the bundle of a version from the model store (RegistryError naming what is wrong)."""
        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"{version!r} is not a model version")
        path = self.models / version
        if not path.is_dir():
            raise RegistryError(f"model version {version} has no bundle folder {path}")
        try:
            bundle = load_bundle(path)
        except BundleError as e:
            raise RegistryError(f"model version {version} cannot be served: {e}") from None
        if bundle.version != version:
            raise RegistryError(f"the bundle folder {path} holds version {bundle.version}, not {version}")
        return bundle

    # ------------------------------------------------------------ serving

    def current(self) -> Bundle:
        """The serving bundle (a plain read: a request keeps the bundle it took even if a swap follows)."""
        return self._bundle

    def promote(self, version: str) -> Bundle:
        """Serve `version`: load and verify its bundle, warm it up, record it as champion, then swap the reference."""
        with self._swap:
            return self._serve(version)

    def _serve(self, version: str, retire: str | None = None) -> Bundle:
        """Load + warm up `version`, record it (and `retire`) in storage, then swap; the caller holds the swap lock."""
        bundle = self._load(version)
        bundle.warm_up()
        if version not in {m["version"] for m in self.storage.models()}:
            self.storage.add_model(version, str(self.models / version), self._bundle.version, bundle.metrics, "retired")
        self.storage.set_champion(version)
        self._bundle = bundle
        log.info("serving model version %s", version)
        return bundle

    def rollback(self) -> Bundle:
        """Serve the version the current one replaced (its parent); RegistryError when there is none."""
        with self._swap:
            current = self._bundle.version
            record = next((m for m in self.storage.models() if m["version"] == current), None)
            parent = record.get("parent") if record else None
            if not parent:
                raise RegistryError(f"model version {current} has no previous version to roll back to")
            return self._serve(parent)

    def versions(self) -> list[dict]:
        """Every recorded version (version, path, parent, created, status, metrics) with `serving` and `available`
        (its bundle folder exists), oldest first."""
        serving = self._bundle.version
        out = []
        for m in self.storage.models():
            available = bool(m.get("path")) and (self.models / m["version"]).is_dir()
            out.append({**m, "serving": m["version"] == serving, "available": available})
        return out
