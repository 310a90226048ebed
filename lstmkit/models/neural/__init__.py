"""Neural forecasters: one file per architecture (`lstm`, `gru`, `bilstm`, `cnn_lstm`, `attention_lstm`, `tcn`,
`nbeats`, `patchtst`, `tft`, `deepar`), each `build()`ing a Keras 3 network `(batch, lookback, channels) ->
(batch, horizon)` from a ModelSpec; the layers they share (`layers`: per-window normalisation; `heads`: the quantile
head; `mc_dropout`: Monte Carlo dropout sampling) and the forecaster that trains any of them (`forecaster`).
"""
