"""Models: the stacked LSTM forecaster with a direct multi-step head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


@dataclass
class LSTMSpec:
    """Architecture and optimiser of one LSTM forecaster."""

    layers: int = 1
    units: int = 64
    dropout: float = 0.2
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LSTMSpec":
        """Build from a dict, ignoring keys that are not hyperparameters."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def build_lstm(lookback: int, channels: int, horizon: int, spec: LSTMSpec) -> keras.Model:
    """Compiled stacked LSTM: (batch, lookback, channels) -> (batch, horizon), cuDNN-compatible."""
    inputs = keras.Input(shape=(lookback, channels), name="window")
    x = inputs
    for i in range(spec.layers):
        # default activations and no recurrent dropout keep the fused cuDNN kernel eligible on GPU
        x = keras.layers.LSTM(spec.units, return_sequences=i < spec.layers - 1, name=f"lstm_{i + 1}")(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
    outputs = keras.layers.Dense(horizon, name="forecast")(x)
    model = keras.Model(inputs, outputs, name="lstm_forecaster")
    optimizer = OPTIMIZERS[spec.optimizer](learning_rate=spec.learning_rate)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model
