"""Where the tests find the project and the shared development data."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the project folder (notebooks/, configs/, benchmarks/)
SHARED_DATA = REPO.parent / "shared" / "data"  # public datasets for development and tests (not shipped)
BENCHMARKS = REPO / "benchmarks"
