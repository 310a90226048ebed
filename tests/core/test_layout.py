"""The package's shape: one error root, no import cycle, a light service, and the CLI's one-line errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import lstmkit
from lstmkit.core.errors import ConfigError, LstmkitError, StageFailed
from tests.paths import REPO

cli_main = importlib.import_module("lstmkit.cli.main")  # (lstmkit.cli.main is also the function)
CYCLES_TOOL = REPO.parent / "shared" / "tools" / "import_cycles.py"


def package_modules() -> list[str]:
    """Every module of the package (not `__main__` entry points, which run on import)."""
    return [m.name for m in pkgutil.walk_packages(lstmkit.__path__, "lstmkit.") if not m.name.endswith("__main__")]


def test_every_exception_class_of_the_package_derives_from_the_one_root():
    classes = {obj for name in package_modules() for obj in vars(importlib.import_module(name)).values()
               if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("lstmkit.")}
    assert len(classes) >= 20
    assert [c.__qualname__ for c in classes if not issubclass(c, LstmkitError)] == []
    assert {c.__module__ for c in classes} == {"lstmkit.core.errors"}  # and they live in one place


def test_there_is_no_import_cycle_counting_imports_inside_functions():
    out = subprocess.run([sys.executable, str(CYCLES_TOOL), "lstmkit"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith(" 0 cycles"), out


def test_importing_the_service_loads_no_tuning_training_plotting_or_report_module():
    code = ("import sys, lstmkit.service.app\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert "lstmkit.service.app" in loaded
    heavy = ("lstmkit.tuning", "lstmkit.stages", "lstmkit.report", "lstmkit.explain", "lstmkit.anomalies", "lstmkit.runs",
             "lstmkit.cli", "keras_tuner", "optuna", "ray", "papermill", "shap")
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy)] == []
    # matplotlib: no lstmkit module of the service imports it (lint-imports); Keras 3 itself imports pyplot when it is
    # installed (keras.src.visualization), and the service needs Keras to run a bundle's network
    assert "matplotlib" not in loaded or "keras" in loaded


@pytest.mark.parametrize("error,status", [(ConfigError("model.units: -1 is not an integer of at least 1"), 2),
                                          (StageFailed("stage 'training' failed"), 1)])
def test_the_cli_prints_one_line_for_an_error_of_the_package(error, status, monkeypatch, capsys):
    def fail(args):
        raise error

    monkeypatch.setattr(cli_main, "cmd_config", fail)
    monkeypatch.delenv("LSTMKIT_TRACEBACK", raising=False)
    assert cli_main.main(["config"]) == status == error.exit_code
    err = capsys.readouterr().err
    assert err == f"error: {error}\n"


def test_anything_else_is_a_bug_with_its_traceback(monkeypatch):
    def fail(args):
        raise ValueError("a bug inside numpy")

    monkeypatch.setattr(cli_main, "cmd_config", fail)
    with pytest.raises(ValueError, match="a bug inside numpy"):  # not caught: Python prints the traceback, exit 1
        cli_main.main(["config"])
