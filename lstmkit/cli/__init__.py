"""The command line (`lstmkit run`, `tune`, `report`, `export`, `serve`, `kernel`, `config`) and the papermill pipeline
it drives: the top layer, which may use every other."""

from lstmkit.cli.main import main

__all__ = ["main"]
