"""Request batching: forecast windows waiting at the same time go through the serving model in one call.

One worker thread runs "now, collecting while busy": a window arriving at an idle model runs at once, alone; windows
arriving while a batch runs wait in the queue and the next model call takes all of them (up to `serve.batch_max`).
Only when the previous call already ran a batch of several windows (the service is under load) does the worker
wait up to `serve.batch_wait_ms` for more to join, so an idle service never adds that wait to a request. Each batch
runs through `Bundle.forecast_arrays` of the bundle serving at that moment (the registry's `current()`) and resolves
each request's future with that bundle's version. A model swap
between batches never fails a request: windows are validated against the look-back and columns, which a retrained
bundle keeps."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from lstmkit.core.errors import BatcherClosed

log = logging.getLogger("lstmkit.service")


@dataclass
class Forecast:
    """One window's forecast: the answering version and arrays in original units."""

    version: str
    mean: np.ndarray   # (h,)
    lower: np.ndarray  # (h, L)
    upper: np.ndarray  # (h, L)


@dataclass
class _Item:
    """A waiting window and the future its request waits on."""

    values: np.ndarray  # (lookback, channels), original units
    horizon: int
    future: Future


class Batcher:
    """Collects forecast windows and runs them in batches through the current bundle on one worker thread."""

    def __init__(self, current: Callable[[], object], batch_max: int = 64, batch_wait_ms: float = 2.0):
        """`current()` returns the serving Bundle; `batch_max` windows at most per model call."""
        self._current = current
        self.batch_max = max(1, int(batch_max))
        self.batch_wait = max(0.0, float(batch_wait_ms)) / 1000.0
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0   # model calls made
        self.windows = 0   # windows forecast
        self._busy = False  # the last model call ran several windows: later batches may wait for more to join
        self._thread = threading.Thread(target=self._run, name="lstmkit-batcher", daemon=True)
        self._thread.start()

    def submit(self, values: np.ndarray, horizon: int) -> Future:
        """Queue one (lookback, channels) window in original units; the future resolves to a `Forecast`."""
        if self._closed:
            raise BatcherClosed("the service is shutting down")
        fut: Future = Future()
        self._queue.put(_Item(np.asarray(values, dtype=np.float64), int(horizon), fut))
        return fut

    def forecast(self, values: np.ndarray, horizon: int, timeout: float = 60.0) -> Forecast:
        """Forecast one window (blocking until its batch has run)."""
        return self.submit(values, horizon).result(timeout=timeout)

    def close(self) -> None:
        """Stop the worker after the windows already queued; later submits raise BatcherClosed."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        """The first item plus those already waiting, up to batch_max (under load, also those arriving within the
        wait); True when told to stop."""
        items = [first]
        deadline = time.monotonic() + (self.batch_wait if self._busy else 0.0)
        while len(items) < self.batch_max:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if left <= 0 else self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _run(self) -> None:
        """Worker loop: collect a batch, forecast it, resolve the futures."""
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            items, stop = self._collect(first)
            self._busy = len(items) > 1
            self._forecast(items)
        while True:  # anything left after close: refuse it
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and not item.future.done():
                item.future.set_exception(BatcherClosed("the service is shutting down"))

    def _forecast(self, items: list[_Item]) -> None:
        """Run a batch through the bundle serving now (grouped by window shape, normally one group)."""
        items = [it for it in items if it.future.set_running_or_notify_cancel()]
        if not items:
            return
        try:
            bundle = self._current()
        except Exception as e:  # noqa: BLE001 - handed to every waiting request
            for it in items:
                it.future.set_exception(e)
            return
        groups: dict[tuple, list[_Item]] = {}
        for it in items:
            groups.setdefault(it.values.shape, []).append(it)
        for group in groups.values():
            try:
                mean, lower, upper = bundle.forecast_arrays(np.stack([it.values for it in group]))
            except Exception as e:  # noqa: BLE001 - handed to every request of the group
                log.exception("forecast batch of %d windows failed", len(group))
                for it in group:
                    it.future.set_exception(e)
                continue
            self.batches += 1
            self.windows += len(group)
            for i, it in enumerate(group):
                h = it.horizon
                it.future.set_result(Forecast(bundle.version, mean[i, :h], lower[i, :h], upper[i, :h]))
