"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide native stderr (TF logs printed before absl logging is initialised ignore TF_CPP_MIN_LOG_LEVEL); replay it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            buf.seek(0)
            sys.stderr.write(buf.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"


def import_tensorflow() -> None:
    """Import TensorFlow and discover devices with its start-up log lines hidden (call before importing lstmkit)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs (e.g. cuInit failures on CPU-only hosts) happen here


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: --config and --units."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML profile giving the data and windows (default: configs/default.yaml)")
    p.add_argument("--units", type=int, default=64, help="LSTM units (default: 64; one layer)")
    return p


def prepare_data(config: str):
    """The profile's config and its series split, scaled and ready to be cut into windows (lstmkit's stages 1-2)."""
    from lstmkit.config import load_config
    from lstmkit.data.series import load_series
    from lstmkit.data.windows import prepare

    cfg = load_config(config)
    return cfg, prepare(load_series(cfg).frame, cfg)


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned first column, right-aligned others, with a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
