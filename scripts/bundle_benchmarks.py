"""Regenerate src/mira_select/assets/benchmarks.jsonl.zst from data/benchmarks (MBPP+, Spider dev, BIRD dev)."""

from pathlib import Path

from mira_select.benchmarks import BUNDLED, bundle

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    n = bundle(REPO / "data" / "benchmarks", REPO / "src" / "mira_select" / "assets" / BUNDLED)
    print(f"bundled {n} benchmark items")
