"""Monte Carlo dropout (Gal & Ghahramani 2016): sample paths from a trained network whose Dropout layers, and ONLY
those, stay active at inference.

`sample(network, windows, n_samples, seed)` -> (windows, n_samples, horizon). How it keeps everything else as it is:
- the network runs with `training=False`: BatchNormalization uses (and keeps) its moving statistics, recurrent layers
  take their inference path (cuDNN-eligible on a GPU; Keras >= 3.9, which no longer applies an LSTM's input dropout at
  inference there), any other training-mode behaviour stays off. `model(x, training=True)` is never called: it would
  switch BatchNormalization to batch statistics and overwrite its moving averages;
- every `keras.layers.Dropout` with a positive rate, nested ones included (TFT's gated units, MultiHeadAttention's
  attention dropout), draws its own mask: during the trace its `call` is replaced by a stateless masked copy, and
  restored afterwards. No variable is written (not even the Dropout layers' seed-generator states).

Sampling is batched and compiled: each chunk of windows is one `tf.function` call holding all its samples as rows of
one batch (row s * m + i = sample s of window i of the chunk's m windows). Layers before the first sampled Dropout
compute the same values for every sample, so the batch is tiled lazily, where the first sampled Dropout (or a layer
holding one) is reached: for a stacked LSTM with dropout after its last layer the recurrent part runs once per window,
not once per sample.

Sample s uses the same dropout masks for every window (one thinned network per sample, the "T sets of weights" of
Gal & Ghahramani; each window's samples are still independent draws): sample s of window i depends only on the seed,
s and the window, not on the other windows passed or on `batch_size`. Masks come from stateless random draws
(`tf.random.stateless_uniform`) keyed by (seed, dropout call), so the same seed repeats the same samples.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras
import numpy as np

from lstmkit.core.errors import ForecasterError

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {key: tf.function}


def dropout_layers(network: keras.Model) -> list[keras.layers.Dropout]:
    """Every Dropout layer with a positive rate in the network, nested ones included (layers' own sublayers)."""
    return [layer for layer in network._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.Dropout) and float(layer.rate) > 0]


class _Masks:
    """The sampled Dropout calls of one trace: each call draws masks (n_samples, 1, *row shape) for its inputs."""

    def __init__(self, n_samples: int, seed, active: bool):
        self.n_samples, self.seed, self.active = n_samples, seed, active
        self.calls = 0

    def dropout_call(self, layer: keras.layers.Dropout) -> Callable:
        """A replacement for `layer.call`: inputs (n_samples * m, ...) -> masked and rescaled by 1 / (1 - rate)."""
        import tensorflow as tf

        def call(inputs, training=None):
            """Stateless dropout of the sample-major rows of `inputs`; the identity when sampling is off."""
            if not self.active:
                return inputs
            key = self.calls
            self.calls += 1
            x = tf.convert_to_tensor(inputs)
            shape = tf.shape(x)
            row = shape[1:]
            if layer.noise_shape is not None:  # a dimension of 1 shares one mask value along it (None: the input's)
                row = tf.stack([shape[d + 1] if size is None else tf.constant(size, tf.int32)
                                for d, size in enumerate(layer.noise_shape[1:])])
            seed = tf.stack([self.seed, tf.constant(key, tf.int64)])
            draws = tf.random.stateless_uniform(tf.concat([[self.n_samples, 1], row], 0), seed=seed, dtype=x.dtype)
            rate = float(layer.rate)
            keep = tf.cast(draws >= rate, x.dtype) / (1.0 - rate)
            grouped = tf.reshape(x, tf.concat([[self.n_samples, -1], shape[1:]], 0))  # (samples, m, ...)
            return tf.reshape(grouped * keep, shape)

        return call


class _Patched:
    """Context: the network's sampled Dropout layers call `masks`' stateless dropout; their own `call` comes back after."""

    def __init__(self, layers: list[keras.layers.Dropout], masks: _Masks):
        self.layers, self.masks = layers, masks

    def __enter__(self) -> _Patched:
        """Replace each sampled Dropout layer's `call` on the instance."""
        for layer in self.layers:
            object.__setattr__(layer, "call", self.masks.dropout_call(layer))
        return self

    def __exit__(self, *exc) -> None:
        """Remove the instance's `call`: the class's own is used again."""
        for layer in self.layers:
            if "call" in vars(layer):
                object.__delattr__(layer, "call")


def _holders(network: keras.Model, sampled: list[keras.layers.Dropout]) -> set[int]:
    """ids of the network's top-level operations that are, or hold, a sampled Dropout layer."""
    ids = {id(layer) for layer in sampled}
    out = set()
    for op in network.operations:
        inner = op._flatten_layers(include_self=True, recursive=True) if isinstance(op, keras.layers.Layer) else [op]
        if any(id(layer) in ids for layer in inner):
            out.add(id(op))
    return out


def _forward(network: keras.Model, x, n_samples: int, holders: set[int]):
    """The network on windows x (m, lookback, channels) in inference mode, its outputs tiled per sample
    (n_samples * m, ...), tiling lazily at the first operation that is or holds a sampled Dropout."""
    import tensorflow as tf

    tiled: set[int] = set()
    alive: list = []          # keeps every tracked tensor alive, so that no id is reused during the trace
    tile_cache: dict[int, object] = {}

    def tile(t):
        """t tiled per sample (n_samples * m, ...), unless it already is."""
        if id(t) in tiled:
            return t
        if id(t) not in tile_cache:
            alive.append(t)
            tile_cache[id(t)] = tf.tile(t, [n_samples] + [1] * (len(t.shape) - 1))
        return tile_cache[id(t)]

    def wrap(op):
        """op run on tiled inputs when it samples or when any input is tiled; training=False where it takes one."""
        def run(*args, **kwargs):
            """The operation's outputs, tiled per sample when it samples or reads a tiled input."""
            flat = [t for t in keras.tree.flatten((args, kwargs)) if tf.is_tensor(t)]
            stochastic = id(op) in holders or any(id(t) in tiled for t in flat)
            if stochastic:
                args, kwargs = keras.tree.map_structure(lambda t: tile(t) if tf.is_tensor(t) else t, (args, kwargs))
            if getattr(op, "_call_has_training_arg", False) and "training" not in kwargs:
                kwargs["training"] = False
            out = op(*args, **kwargs)
            if stochastic:
                for t in keras.tree.flatten(out):
                    if tf.is_tensor(t):
                        tiled.add(id(t))
                        alive.append(t)
            return out
        return run

    if not hasattr(network, "_run_through_graph") or not hasattr(network, "_nodes_by_depth"):
        return network(tf.tile(x, [n_samples, 1, 1]), training=False)  # not functional: every row tiled up front
    out = network._run_through_graph(x, operation_fn=wrap)
    out = keras.tree.flatten(out)[0]
    return tile(out)


def _compiled(network: keras.Model, n_samples: int, sampling: bool, output_index: int | None,
              sampled: list[keras.layers.Dropout]) -> tuple[Callable, _Masks]:
    """The compiled sampler of (network, n_samples, sampling, output_index): (windows (m, L, C), seed) ->
    (m, n_samples, horizon); traced once, inside the Dropout patch."""
    import tensorflow as tf

    key = (n_samples, sampling, output_index)
    cache = _COMPILED.setdefault(network, {})
    if key in cache:
        return cache[key]
    holders = _holders(network, sampled) if sampling else set()
    masks = _Masks(n_samples, None, sampling)
    ref = weakref.ref(network)  # the cache must not keep its key alive

    def run(windows, seed):
        """Samples (m, n_samples, horizon) of windows (m, lookback, channels) under the int64 seed."""
        masks.seed, masks.calls = seed, 0
        y = _forward(ref(), windows, n_samples, holders)   # (n_samples * m, horizon[, K])
        if output_index is not None:
            y = y[..., output_index]
        y = tf.reshape(y, tf.stack([n_samples, tf.shape(windows)[0], -1]))
        return tf.transpose(y, [1, 0, 2])

    spec = [tf.TensorSpec((None, *network.input_shape[1:]), tf.float32), tf.TensorSpec((), tf.int64)]
    cache[key] = (tf.function(run, input_signature=spec, jit_compile=False), masks)
    return cache[key]


def sample(network: keras.Model, windows: np.ndarray, n_samples: int, seed: int = 0, batch_size: int = 8192,
           sampling: bool = True, output_index: int | None = None) -> np.ndarray:
    """MC-dropout sample paths (windows, n_samples, horizon) from look-back windows (windows, lookback, channels).

    Only the network's Dropout layers sample (see the module docstring); the same seed gives the same samples.
    `batch_size`: rows (windows x samples) per forward pass. `sampling=False` turns the Dropout layers off too: every
    sample is then the network's ordinary inference forecast. `output_index`: for a quantile network (output
    (batch, horizon, K)), the level to sample (e.g. its median).
    """
    if keras.backend.backend() != "tensorflow":
        raise ForecasterError(f"MC dropout sampling needs the TensorFlow backend of Keras, not "
                              f"{keras.backend.backend()!r}")
    sampled = dropout_layers(network)
    if sampling and not sampled:
        raise ForecasterError(f"{network.name}: MC dropout needs a Dropout layer with a positive rate, and this "
                              f"network has none (train it with model.dropout > 0)")
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ForecasterError(f"MC dropout: n_samples must be at least 1, got {n_samples}")
    if len(network.output_shape) == 3 and output_index is None:
        raise ForecasterError(f"{network.name}: the network forecasts quantiles (batch, horizon, K); pass the "
                              f"output_index of the level to sample")
    windows = np.asarray(windows, dtype=np.float32)
    horizon = int(network.output_shape[1])
    if len(windows) == 0:
        return np.empty((0, n_samples, horizon))
    fn, masks = _compiled(network, n_samples, bool(sampling), output_index, sampled)
    per_call = max(1, int(batch_size) // n_samples)
    out = np.empty((len(windows), n_samples, horizon))
    with _Patched(sampled, masks):  # a retrace (unexpected) would still see the sampling Dropout calls
        for a in range(0, len(windows), per_call):
            out[a:a + per_call] = np.asarray(fn(windows[a:a + per_call], np.int64(seed)))
    return out
