"""benchmarks/gpu.py: without a GPU it says so and exits 0; its cuDNN switch and op inspection work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "gpu.py"


def test_without_a_gpu_it_says_so_and_exits_0():
    """With no GPU visible (hidden from CUDA, as on CI) the script prints the one-line notice and succeeds."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no GPU visible to TensorFlow" in done.stdout
    assert "windows/s" not in done.stdout  # nothing was measured


@pytest.mark.parametrize("architecture, layer", [("lstm", "LSTM"), ("gru", "GRU")])
def test_cudnn_switch_and_op_inspection(architecture, layer):
    """cudnn_disabled() builds the zoo's recurrent layers with use_cudnn=False and is undone on exit; the traced
    training step of a network on the CPU holds no CudnnRNN op but the generic while loop."""
    import keras
    import numpy as np

    from lstmkit.models.neural.forecaster import build_network
    from lstmkit.models.neural.spec import ModelSpec

    gpu = load_benchmark("gpu")
    spec = ModelSpec(architecture=architecture, units=4, dropout=0.0, batch_size=8)
    original = getattr(keras.layers, layer)
    with gpu.cudnn_disabled():
        off = build_network(spec, 12, 1, 3)
    assert getattr(keras.layers, layer) is original
    recurrent = [lay for lay in off.layers if isinstance(lay, original)]
    assert recurrent and all(lay.use_cudnn is False for lay in recurrent)
    default = build_network(spec, 12, 1, 3)
    assert all(lay.use_cudnn == "auto" for lay in default.layers if isinstance(lay, original))
    types = gpu.step_op_types(default, np.zeros((8, 12, 1), dtype="float32"))
    assert not any(t.startswith("CudnnRNN") for t in types)
    assert {"While", "StatelessWhile"} & types
