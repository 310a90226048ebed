"""GPU path: windows/s of the zoo's LSTM, GRU and TFT on the GPU against the CPU, mixed precision on and off, cuDNN checked.

Without a GPU visible to TensorFlow (``tf.config.list_physical_devices("GPU")`` empty) the script prints one line
saying so and exits 0. With one, for each architecture (``build_network`` of ``ModelSpec.from_config``, the profile's
``model.<architecture>`` settings, one layer of ``--units``, dropout 0) it trains on the profile's training windows
(``Prepared.dataset("train", batch, shuffle=True, repeat=True)``, as ``NeuralForecaster.fit`` feeds them) for
``--warmup`` untimed epochs (tracing, cuDNN autotuning) then ``--epochs`` timed epochs of ``--steps`` batches each,
and reports training windows per second for these variants:

* ``gpu``: float32 on the GPU, the layers as lstmkit builds them (cuDNN-eligible: default activations, no recurrent
  dropout);
* ``gpu, cuDNN off``: the same network with ``use_cudnn=False`` on every ``keras.layers.LSTM``/``GRU`` (the generic
  while-loop kernel), to measure what cuDNN brings; Keras compiles it with XLA when every layer allows it
  (``jit_compile="auto"``), which a cuDNN layer does not: the table's XLA column says which step was compiled;
* ``gpu, mixed_float16``: ``keras.mixed_precision.set_global_policy("mixed_float16")`` while the network is built
  (Keras wraps the optimizer in a loss-scale optimizer);
* ``cpu``: float32 in a child process that sees no GPU (``CUDA_VISIBLE_DEVICES=-1``). A ``tf.device("/CPU:0")`` scope
  would not do: Keras chooses the cuDNN op when the layer is traced whenever a GPU exists, whatever the device scope,
  and soft placement would then run that op on the GPU anyway.

cuDNN is checked, not assumed: for each variant the forward and backward pass of one batch are traced into a graph
and its op types (the function library included) are searched for ``CudnnRNN*`` ops; the default variant must hold
them and the ``cuDNN off`` one must not, and the timing ratio of the two says what the fused kernel is worth.

Then a population-based training search (``lstmkit.tuning.search.tune`` with ``tuning.strategy: pbt``, Ray Tune) on the GPU
with one trial per GPU fraction (``tuning.gpus_per_trial`` = ``--gpu-fraction``, default 0.25: four trials share the
GPU; at most 1/fraction trials at once), sampling
``nvidia-smi`` once a second to count the trial processes on the GPU at once. Run from the repository root:

    python benchmarks/gpu.py [--quick] [--config configs/etth2.yaml] [--architectures lstm gru tft] [--units 64]
        [--batch-size 256] [--steps 50] [--epochs 2] [--warmup 1] [--no-pbt] [--gpu-fraction 0.25]

``--quick`` (a few minutes): lookback 96, 20 steps, 1 timed epoch, a PBT search of 4 trials x 4 epochs.
``--cpu-check`` runs every measurement on the CPU in place of the GPU (figures meaningless): a check that the script
works on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # several PBT trials share one GPU (Ray workers inherit it)

from common import REPO, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

NO_GPU = ("no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty): nothing to measure; "
          "run benchmarks/gpu.py on a machine with a CUDA GPU and TensorFlow's CUDA build")
ARCHITECTURES = ("lstm", "gru", "tft")
VARIANTS = ("gpu", "gpu, cuDNN off", "gpu, mixed_float16", "cpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (--quick lowers the defaults of the ones not given)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "etth2.yaml"), help="profile giving the data and windows (default: configs/etth2.yaml)")
    p.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES, help="architectures measured (default: lstm gru tft)")
    p.add_argument("--units", type=int, default=64, help="units (TFT: hidden size) of the one recurrent layer (default: 64)")
    p.add_argument("--lookback", type=int, default=None, help="look-back steps (default: the profile's; --quick: 96)")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size (default: 256)")
    p.add_argument("--steps", type=int, default=None, help="batches per epoch (default: 50; --quick: 20)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per variant (default: 2; --quick: 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs before them (default: 1)")
    p.add_argument("--cpu-steps", type=int, default=None, help="batches per epoch on the CPU (default: --steps / 5, at least 2)")
    p.add_argument("--no-pbt", action="store_true", help="skip the PBT search")
    p.add_argument("--gpu-fraction", type=float, default=0.25, help="GPU share of one PBT trial (default: 0.25: four trials per GPU)")
    p.add_argument("--pbt-trials", type=int, default=None, help="PBT population (default: 8; --quick: 4)")
    p.add_argument("--pbt-epochs", type=int, default=None, help="epochs per PBT trial (default: 8; --quick: 4)")
    p.add_argument("--quick", action="store_true", help="small settings: a few minutes in all")
    p.add_argument("--cpu-check", action="store_true", help="run everything on the CPU as if it were the GPU (checks the script; figures meaningless)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # JSON of the measurements a CPU-only child process runs
    args = p.parse_args(argv)
    quick = args.quick or args.cpu_check
    for name, full, small in (("steps", 50, 20), ("epochs", 2, 1), ("pbt_trials", 8, 4), ("pbt_epochs", 8, 4)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.lookback is None and quick:
        args.lookback = 96
    if args.cpu_steps is None:
        args.cpu_steps = max(2, args.steps // 5)
    if args.cpu_check:
        args.steps, args.cpu_steps, args.units, args.batch_size, args.lookback = 2, 2, 8, 32, 24
        args.pbt_trials, args.pbt_epochs = 2, 2
    if min(args.units, args.batch_size, args.steps, args.epochs, args.cpu_steps, args.pbt_trials, args.pbt_epochs) < 1 \
            or args.warmup < 0 or not 0 < args.gpu_fraction <= 1:
        p.error("--units, --batch-size, --steps, --epochs, --cpu-steps, --pbt-trials and --pbt-epochs must be at least 1, "
                "--warmup at least 0, --gpu-fraction in (0, 1]")
    return args


@dataclass
class Measurement:
    """Windows/s of one architecture and variant, and the cuDNN ops found in its traced training step."""

    architecture: str
    variant: str
    seconds: list[float] = field(default_factory=list)  # timed epochs
    windows: int = 0  # windows per timed epoch
    cudnn_ops: list[str] = field(default_factory=list)
    loop_ops: bool = False  # a While loop (the generic recurrent kernel) in the step
    xla: bool = False  # model.fit compiled the step with XLA (Keras' jit_compile="auto")
    error: str = ""

    @property
    def rate(self) -> float:
        """Windows per second over the timed epochs (NaN when the variant failed)."""
        return self.windows / statistics.fmean(self.seconds) if self.seconds else float("nan")


# ---------------------------------------------------------------- building and timing one variant


@contextmanager
def cudnn_disabled() -> Iterator[None]:
    """While inside, every keras.layers.LSTM and GRU built gets use_cudnn=False (the generic while-loop kernel)."""
    import keras

    lstm, gru = keras.layers.LSTM, keras.layers.GRU

    class LSTM(lstm):
        """keras.layers.LSTM without the fused cuDNN kernel."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "use_cudnn": False})

    class GRU(gru):
        """keras.layers.GRU without the fused cuDNN kernel."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "use_cudnn": False})

    keras.layers.LSTM, keras.layers.GRU = LSTM, GRU
    try:
        yield
    finally:
        keras.layers.LSTM, keras.layers.GRU = lstm, gru


@contextmanager
def precision(policy: str) -> Iterator[None]:
    """Keras' global dtype policy set to `policy` while inside (networks built inside keep it)."""
    import keras

    old = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def step_op_types(model, x) -> set[str]:
    """Op types of one traced training step of `model` on the batch x (batch, lookback, channels): forward pass,
    loss and gradients, the graph's function library (while-loop bodies, ...) included."""
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.cast(model(x, training=True), tf.float32)))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec(x.shape, x.dtype)).graph.as_graph_def()
    types = {n.op for n in graph.node}
    for fn in graph.library.function:
        types |= {n.op for n in fn.node_def}
    return types


def measure(prepared, cfg, architecture: str, variant: str, args: argparse.Namespace, steps: int) -> Measurement:
    """Build the architecture's network for the variant, trace its step for cuDNN ops, time warm-up + timed epochs."""
    import keras

    from lstmkit.models.neural.forecaster import build_network, set_seed
    from lstmkit.models.neural.spec import ModelSpec

    out = Measurement(architecture, variant, windows=steps * args.batch_size)
    spec = ModelSpec.from_config(cfg, architecture=architecture,
                                 values={"layers": 1, "units": args.units, "dropout": 0.0, "batch_size": args.batch_size})
    try:
        keras.backend.clear_session()
        set_seed(cfg.seed)
        with precision("mixed_float16" if "mixed" in variant else "float32"), \
                (cudnn_disabled() if "off" in variant else _nothing()):
            model = build_network(spec, prepared.lookback, len(prepared.columns), prepared.horizon, prepared.target_index)
        data = prepared.dataset("train", args.batch_size, shuffle=True, seed=cfg.seed, repeat=True)
        x, _ = next(iter(data))
        out.xla = bool(getattr(model, "jit_compile", False))
        types = step_op_types(model, x)
        out.cudnn_ops = sorted(t for t in types if t.startswith("CudnnRNN"))
        out.loop_ops = any(t in ("While", "StatelessWhile") for t in types)
        times: list[float] = []
        timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
                                               on_epoch_end=lambda e, logs: times.append(time.perf_counter() - times.pop()))
        model.fit(data, epochs=args.warmup + args.epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[timer])
        out.seconds = times[args.warmup:]
    except Exception as e:  # a variant that fails (e.g. an op without a float16 kernel) is reported, not fatal
        out.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
    return out


@contextmanager
def _nothing() -> Iterator[None]:
    """A context that does nothing."""
    yield


def load_prepared(args: argparse.Namespace):
    """The profile's configuration and its prepared series (lookback overridden by --lookback)."""
    from lstmkit.config import load_config
    from lstmkit.data.series import load_series
    from lstmkit.data.windows import prepare

    overrides = {"training.verbose": 0} | ({"window.lookback": args.lookback} if args.lookback else {})
    cfg = load_config(args.config, overrides)
    return cfg, prepare(load_series(cfg).frame, cfg)


def cpu_measurements(args: argparse.Namespace, argv: list[str]) -> list[Measurement]:
    """Run the cpu variant of every architecture in a child process that sees no GPU; its measurements."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", json.dumps(args.architectures)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("[")), None)
    if done.returncode or line is None:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return [Measurement(a, "cpu", error=f"child process failed ({done.returncode}): {detail}") for a in args.architectures]
    return [Measurement(**m) for m in json.loads(line)]


# ---------------------------------------------------------------- the PBT search on GPU fractions


class GpuSampler:
    """Counts the compute processes on the GPU once a second (nvidia-smi) in a background thread."""

    def __init__(self) -> None:
        self.most, self.samples, self._stop = 0, 0, threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        """Sample until stopped."""
        while not self._stop.wait(1.0):
            try:
                out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=10, check=False).stdout
            except (OSError, subprocess.TimeoutExpired):
                continue
            self.samples += 1
            self.most = max(self.most, len([ln for ln in out.splitlines() if ln.strip()]))

    def __enter__(self) -> GpuSampler:
        """Start sampling (when nvidia-smi exists)."""
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop sampling."""
        self._stop.set()
        if self.available:
            self._thread.join(timeout=15)


def pbt_search(args: argparse.Namespace) -> str:
    """A PBT search through lstmkit.tuning.search.tune with one trial per GPU fraction; a paragraph of its figures."""
    from lstmkit.config import load_config
    from lstmkit.data.series import load_series, save_series
    from lstmkit.data.windows import prepare
    from lstmkit.runs.folder import start_run
    from lstmkit.stages.preprocessing import save_prepared
    from lstmkit.tuning.search import tune

    per_gpu = int(round(1 / args.gpu_fraction))
    space = {"architecture": "lstm", "layers": 1, "units": [args.units // 2, args.units],
             "learning_rate": {"min": 3e-4, "max": 1e-2, "log": True}, "dropout": {"min": 0.0, "max": 0.2, "step": 0.1},
             "batch_size": [64, 128, 256], "optimizer": "adam", "normalization": "last"}
    overrides = {"tuning.strategy": "pbt", "tuning.max_trials": args.pbt_trials, "tuning.epochs": args.pbt_epochs,
                 "tuning.perturbation_interval": 1 if args.pbt_epochs < 4 else 2, "tuning.cv_folds": 1,
                 "tuning.max_minutes": 0, "tuning.workers": per_gpu, "tuning.space": space, "training.verbose": 0}
    if args.lookback:
        overrides["window.lookback"] = args.lookback
    fraction = 0.0 if args.cpu_check else args.gpu_fraction
    cfg = load_config(args.config, overrides | {"tuning.gpus_per_trial": fraction})
    frame = load_series(cfg).frame
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-gpu-pbt-") as tmp, GpuSampler() as sampler:
        run = start_run(tmp, cfg)
        save_series(frame, run.series_file)
        prepared = prepare(frame, cfg)
        save_prepared(prepared, run)
        t0 = time.perf_counter()
        spec, table = tune(prepared, cfg, run)
        wall = time.perf_counter() - t0
    done = table[table["status"] == "COMPLETED"]
    shared = (f"at most {sampler.most} processes on the GPU at once, this script's own included ({sampler.samples} nvidia-smi samples)"
              if sampler.available else "nvidia-smi not found: processes on the GPU not counted")
    if sampler.available and sampler.samples and not sampler.most:
        shared += " (0: nvidia-smi lists no processes here, as in some containers, so the sharing is not shown)"
    return (f"PBT on the GPU: {len(table)} trials ({len(done)} completed) x {args.pbt_epochs} epochs, "
            f"tuning.gpus_per_trial = {fraction}, "
            f"most {per_gpu} at once: {wall:.1f} s wall, {60 * len(done) / wall:.2f} trials/min, best val_loss "
            f"{done['val_loss'].astype(float).min():.4f} ({spec.architecture} {spec.units} units, lr "
            f"{spec.learning_rate:.2g}); {shared}.")


# ---------------------------------------------------------------- the report


def ratio(m: Measurement, other: Measurement | None) -> str:
    """m's windows/s over other's, as text ('' when either is missing or failed)."""
    return f"{m.rate / other.rate:.2f}x" if other is not None and other.seconds and m.seconds else ""


def report(results: list[Measurement]) -> str:
    """The table (architecture, variant, windows/s, against the CPU and against cuDNN off, cuDNN ops) and a verdict per architecture."""
    rows = [("architecture", "variant", "windows/s", "vs cpu", "vs cuDNN off", "cuDNN ops in the step", "XLA", "note")]
    by = {(m.architecture, m.variant): m for m in results}
    lines = []
    for arch in dict.fromkeys(m.architecture for m in results):
        cpu, off = by.get((arch, "cpu")), by.get((arch, "gpu, cuDNN off"))
        for variant in VARIANTS:
            m = by.get((arch, variant))
            if m is None:
                continue
            ops = ", ".join(m.cudnn_ops) or ("none (while loop)" if m.loop_ops else "none")
            rows.append((arch, variant, f"{m.rate:,.0f}" if m.seconds else "failed", ratio(m, cpu), ratio(m, off), ops,
                         "yes" if m.xla else "no", m.error))
        gpu = by.get((arch, "gpu"))
        if gpu and not gpu.error:
            used = bool(gpu.cudnn_ops) and off is not None and not off.cudnn_ops
            speed = f", {gpu.rate / off.rate:.2f}x the windows/s of the same network with use_cudnn=False" \
                if off and off.seconds else ""
            lines.append(f"{arch}: cuDNN {'USED' if used else 'NOT used'} ({', '.join(gpu.cudnn_ops) or 'no CudnnRNN op'} "
                         f"in the traced training step{speed})")
    return format_table(rows) + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Say so and stop without a GPU; else measure every architecture and variant, print the table, run the PBT search."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import_tensorflow()
    import tensorflow as tf

    if args.child:  # the CPU side, in a process that sees no GPU: one JSON line of measurements
        cfg, prepared = load_prepared(args)
        out = [measure(prepared, cfg, a, "cpu", args, args.cpu_steps) for a in json.loads(args.child)]
        print(json.dumps([asdict(m) for m in out]))
        return 0
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.cpu_check:
        print(NO_GPU)
        return 0
    import keras

    from lstmkit.config import ConfigError

    try:
        cfg, prepared = load_prepared(args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    build = tf.sysconfig.get_build_info()
    print(f"{', '.join(names) or 'NO GPU (--cpu-check: every variant on the CPU)'}; TensorFlow {tf.__version__} "
          f"(CUDA {build.get('cuda_version', '-')}, cuDNN {build.get('cudnn_version', '-')}), Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores")
    print(f"config {Path(args.config).name}: {prepared.n_windows('train')} training windows of {prepared.lookback} x "
          f"{len(prepared.columns)}, horizon {prepared.horizon}; 1 layer of {args.units} units, batch {args.batch_size}; "
          f"{args.warmup} warm-up + {args.epochs} timed epochs of {args.steps} batches (cpu: {args.cpu_steps})", flush=True)

    results = []
    for arch in args.architectures:
        for variant in VARIANTS[:3]:
            results.append(measure(prepared, cfg, arch, variant, args, args.steps))
            print(f"  {arch}, {variant}: {results[-1].rate:,.0f} windows/s {results[-1].error}", flush=True)
    if args.cpu_check:  # already on the CPU: no child needed
        results += [measure(prepared, cfg, a, "cpu", args, args.cpu_steps) for a in args.architectures]
    else:
        results += cpu_measurements(args, argv)
    print("\nTraining throughput (windows/s over the timed epochs; vs: ratio of windows/s)\n")
    print(report(results), flush=True)
    if not args.no_pbt:
        try:
            print("\n" + pbt_search(args))
        except Exception as e:  # the Ray backend may be missing or fail: the throughput figures above still stand
            print(f"\nPBT search failed: {type(e).__name__}: {str(e).strip()[:300]}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
