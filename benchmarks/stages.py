"""Wall time of each pipeline stage, and of the report build, for one or more config profiles.

For each profile (``configs/<profile>.yaml``) the nine notebooks are executed one stage at a time with
``lstmkit.cli.pipeline.run_pipeline(run, cfg, start=stage, stop=stage)`` (what ``lstmkit run`` does, stage by stage) into a
fresh run folder, timing each call; then ``lstmkit.report.book.report`` (what ``lstmkit report`` does: publish the run into
book/ at the project root and build it with jupyter-book) is timed. The Jupyter kernel is registered once beforehand,
so no stage pays for that. Note that the report step rewrites the project's book/ and _build/ folders (git-ignored).
Run from the repository root:

    python benchmarks/stages.py [--profile quick] [--profile default] [--run-dir DIR] [--no-report]

Without --profile both quick and default run (default takes far longer: a real search and a full training).
Without --run-dir the run folders go to a temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the notebook kernels; must precede any TF import

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES = ("quick", "default")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="profile to time: configs/NAME.yaml, e.g. quick or default; repeatable, 'both' = quick and "
                        "default (default: both)")
    p.add_argument("--run-dir", help="parent folder of the run folders (one per profile, named after it; default: a "
                                     "temporary folder, deleted at the end)")
    p.add_argument("--no-report", action="store_true", help="skip the report build")
    p.add_argument("--no-strict", action="store_true", help="build the report without turning Sphinx warnings into errors")
    args = p.parse_args(argv)
    names: list[str] = []
    for name in args.profile or ["both"]:
        for n in (DEFAULT_PROFILES if name == "both" else (name,)):
            if n not in names:
                names.append(n)
    args.profiles = names
    return args


def check_project() -> tuple[Path, list[str]]:
    """The project root the pipeline will use, and the problems (missing notebooks, _toc.yml) that would stop it."""
    from lstmkit.runs.notebooks import STAGES, project_root

    try:
        root = project_root()
    except FileNotFoundError:
        root = REPO
    problems = [f"{root / 'notebooks' / s.notebook} is missing" for s in STAGES if not (root / "notebooks" / s.notebook).is_file()]
    if not (root / "_toc.yml").is_file():
        problems.append(f"{root / '_toc.yml'} is missing (the pipeline and the report need it)")
    return root, problems


def time_profile(profile: str, run_dir: Path, root: Path, report: bool, strict: bool) -> list[tuple[str, float]]:
    """Run one profile stage by stage into run_dir, then build its report; (step name, seconds) for each step done.

    On failure the exception carries the steps timed so far, the failed one last, as its `timings` attribute.
    """
    from lstmkit.cli.pipeline import run_pipeline
    from lstmkit.config import load_config
    from lstmkit.report.book import report as build_report
    from lstmkit.runs.folder import RunFolder
    from lstmkit.runs.notebooks import STAGES

    cfg = load_config(root / "configs" / f"{profile}.yaml")
    run = RunFolder(run_dir.resolve())
    run.root.mkdir(parents=True, exist_ok=True)  # main() checked it is new or empty: stages find no earlier outputs
    timings: list[tuple[str, float]] = []
    steps = [(stage.name, lambda stage=stage: run_pipeline(run, cfg, start=stage.name, stop=stage.name, echo=progress))
             for stage in STAGES]
    if report:
        steps.append(("report", lambda: build_report(run, root, strict=strict)))
    try:
        for name, step in steps:
            if name == "report":
                progress("[report]      jupyter-book build ...", end="", flush=True)
            t0 = time.perf_counter()
            try:
                step()
            finally:  # a failed or interrupted step is recorded too, with the time it took to fail
                timings.append((name, time.perf_counter() - t0))
            if name == "report":
                progress(f" done in {timings[-1][1]:.1f} s")
    except BaseException as e:
        e.timings = timings  # type: ignore[attr-defined]
        raise
    return timings


def progress(*args: object, **kwargs: object) -> None:
    """Progress lines go to stderr, keeping stdout for the table."""
    print(*args, **kwargs, file=sys.stderr)  # type: ignore[call-overload]


def format_table(profiles: list[str], results: dict[str, list[tuple[str, float]]], failed: Sequence[str] = (),
                 report: bool = True) -> str:
    """Stages as rows, profiles as columns of seconds, with totals; the failed step of a failed profile is marked."""
    from lstmkit.runs.notebooks import STAGES

    steps = [s.name for s in STAGES] + (["report"] if report else [])
    notebooks = {s.name: s.notebook for s in STAGES} | {"report": "(jupyter-book build)"}
    secs = {p: dict(results.get(p, [])) for p in profiles}
    last_failed = {p: results[p][-1][0] for p in failed if results.get(p)}

    def cell(p: str, step: str) -> str:
        """Seconds of one step, '-' if not reached, marked if it is the step that failed."""
        if step not in secs[p]:
            return "-"
        return f"{secs[p][step]:.1f}" + (" (failed)" if last_failed.get(p) == step else "")

    rows = [("stage", "notebook", *[f"{p} (s)" for p in profiles])]
    for step in steps:
        rows.append((step, notebooks[step], *[cell(p, step) for p in profiles]))
    stage_names = {s.name for s in STAGES}
    totals = [("total (stages)", lambda d: sum(v for k, v in d.items() if k in stage_names)),
              ("total (stages + report)", lambda d: sum(d.values()))]
    body_end = len(rows)
    for label, fn in totals:
        if label.endswith("report)") and not report:
            continue
        rows.append((label, "", *[f"{fn(secs[p]):.1f}" for p in profiles]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        if j == body_end:
            lines.append("  ".join("-" * w for w in widths))
        lines.append("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Time every stage of each profile and print one table."""
    args = parse_args(argv)
    root, problems = check_project()
    missing_configs = [p for p in args.profiles if not (root / "configs" / f"{p}.yaml").is_file()]
    if missing_configs:
        problems += [f"{root / 'configs' / f'{p}.yaml'} is missing (unknown profile {p!r})" for p in missing_configs]
    if args.run_dir:
        problems += [f"{Path(args.run_dir) / p} already exists and is not empty: remove it or pick another --run-dir "
                     f"(every timing starts from a fresh run folder)"
                     for p in args.profiles if (Path(args.run_dir) / p).exists() and any((Path(args.run_dir) / p).iterdir())]
    if problems:
        print(f"error: cannot time the pipeline (project {root}):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2

    from lstmkit.cli.pipeline import ensure_kernel
    from lstmkit.core.errors import ReportError, StageFailed

    ensure_kernel()  # one-time kernel registration, kept out of the stage timings
    base = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="lstmkit-stages-"))
    results: dict[str, list[tuple[str, float]]] = {}
    failed: list[str] = []
    status = 0
    try:
        for profile in args.profiles:
            print(f"== profile {profile} -> {base / profile}", file=sys.stderr)
            try:
                results[profile] = time_profile(profile, base / profile, root, not args.no_report, not args.no_strict)
            except (StageFailed, ReportError) as e:
                results[profile] = getattr(e, "timings", [])
                failed.append(profile)
                print(f"\nerror: profile {profile}: {e}", file=sys.stderr)
                status = 1
            except KeyboardInterrupt as e:
                results[profile] = getattr(e, "timings", [])
                failed.append(profile)
                print("\ninterrupted", file=sys.stderr)
                status = 130
                break
    finally:
        if not args.run_dir:
            shutil.rmtree(base, ignore_errors=True)
    shown = [p for p in args.profiles if p in results]
    if shown:
        print(f"\nwall time per stage ({os.cpu_count()} CPU cores visible; run folders "
              f"{'kept under ' + str(base) if args.run_dir else 'deleted'})")
        print(format_table(shown, results, failed, report=not args.no_report))
        if failed:
            print(f"incomplete (see the error above): {', '.join(failed)}; '(failed)' = seconds until the step failed "
                  f"or was interrupted, '-' = not reached, totals are partial")
    return status


if __name__ == "__main__":
    sys.exit(main())
