"""Models: the stacked LSTM forecaster with a direct multi-step head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras

OPTIMIZER_CLASSES = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


@dataclass
class LSTMSpec:
    """Architecture and optimiser of one LSTM forecaster."""

    layers: int = 1
    units: int = 64
    dropout: float = 0.2
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    normalization: str = "none"
    lookback: int | None = None  # None: the run's window.lookback

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LSTMSpec:
        """Build from a dict, ignoring keys that are not hyperparameters."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@keras.saving.register_keras_serializable(package="lstmkit")
class WindowNormalization(keras.layers.Layer):
    """Normalise each window by its own statistics; also returns the target channel's shift and scale."""

    def __init__(self, method: str, target_index: int = -1, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.method, self.target_index, self.epsilon = method, target_index, epsilon

    def call(self, x):
        if self.method == "last":
            shift, scale = x[:, -1:, :], keras.ops.ones_like(x[:, -1:, :])
        else:  # revin: the window's own mean and standard deviation
            shift = keras.ops.mean(x, axis=1, keepdims=True)
            scale = keras.ops.sqrt(keras.ops.var(x, axis=1, keepdims=True) + self.epsilon)
        t = self.target_index
        return (x - shift) / scale, shift[:, :, t], scale[:, :, t]

    def get_config(self) -> dict:
        return {**super().get_config(), "method": self.method, "target_index": self.target_index, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="lstmkit")
class WindowDenormalization(keras.layers.Layer):
    """Map a forecast made in normalised units back: y * scale + shift of the target channel."""

    def call(self, inputs):
        y, shift, scale = inputs
        return y * scale + shift


def build_lstm(lookback: int, channels: int, horizon: int, spec: LSTMSpec, target_index: int = -1) -> keras.Model:
    """Compiled stacked LSTM: (batch, lookback, channels) -> (batch, horizon), cuDNN-compatible."""
    inputs = keras.Input(shape=(lookback, channels), name="window")
    x = inputs
    if spec.normalization != "none":
        x, shift, scale = WindowNormalization(spec.normalization, target_index, name="window_norm")(x)
    for i in range(spec.layers):
        # default activations and no recurrent dropout keep the fused cuDNN kernel eligible on GPU
        x = keras.layers.LSTM(spec.units, return_sequences=i < spec.layers - 1, name=f"lstm_{i + 1}")(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
    outputs = keras.layers.Dense(horizon, name="forecast")(x)
    if spec.normalization != "none":
        outputs = WindowDenormalization(name="denorm")([outputs, shift, scale])
    model = keras.Model(inputs, outputs, name="lstm_forecaster")
    optimizer = OPTIMIZER_CLASSES[spec.optimizer](learning_rate=spec.learning_rate)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model
