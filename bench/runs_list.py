"""Listing many runs: what the Runs page and the Train page's default run name read, against a plain
loop that `json.load`s every summary.json and sorts by date — fresh and again (the summaries cached).

    python bench/runs_list.py [--runs 3000] [--rounds 3]

Each round makes ``--runs`` run folders (a real run's recipe.json and summary.json) in a temporary
folder, then times, in a fresh process each: the plain loop; ftstudio's `list_runs` with every run's
summary (the Runs page's listing), twice; `distinct_name` (the Train page's placeholder), twice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = '''
import json, sys, time
from pathlib import Path
parent = Path(sys.argv[1])
out = {}
def timed(name, fn):
    start = time.perf_counter()
    fn()
    out[name] = time.perf_counter() - start
if sys.argv[2] == "plain":
    def plain():
        rows = [json.loads((p / "summary.json").read_text()) for p in parent.iterdir() if (p / "recipe.json").is_file()]
        rows.sort(key=lambda s: s.get("created_ts") or 0.0, reverse=True)
    timed("plain", plain)
else:
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.runs.folders import list_runs
    from ftstudio.core.runs.names import distinct_name
    listing = lambda: [run.summary() for run in list_runs(parent)]
    timed("list", listing)
    timed("list again", listing)
    timed("name", lambda: distinct_name("mlp-digits", Recipe(), parent))
    timed("name again", lambda: distinct_name("mlp-digits", Recipe(), parent))
print(json.dumps(out))
'''


def make_runs(parent: Path, n: int) -> None:
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.runs.folders import Run

    recipe = json.dumps(Recipe().to_dict())
    for i in range(n):
        run = Run(parent / f"run-{i:05d}")
        run.path.mkdir()
        run.recipe_path.write_text(recipe)
        run.summary_path.write_text(json.dumps({
            "name": "mlp-digits", "status": "completed", "created": "2026-12-07T15:00:03", "created_ts": 1.8e9 + i,
            "data": "digits", "model": "mlp", "classes": [str(c) for c in range(10)], "input_shape": [1, 8, 8],
            "mean": [0.3], "std": [0.3], "train_size": 1438, "val_size": 359, "device": "cpu", "params": 19210,
            "trainable_params": 19210, "epochs": 10, "epochs_planned": 10, "train_loss": 0.2, "val_loss": 0.3,
            "val_accuracy": 0.95, "best_val_accuracy": 0.96, "best_epoch": 9, "duration_s": 3.2}))


def child(parent: Path, which: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(parent), which], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ftstudio-runs-") as tmp:
        make_runs(Path(tmp), args.runs)
        for _ in range(args.rounds):
            rows.append({**child(Path(tmp), "plain"), **child(Path(tmp), "ftstudio")})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"{args.runs} runs, {args.rounds} rounds, medians (each side in a fresh process)")
    print(f"  plain loop: json.load every summary, sort     {med['plain']:.3f} s")
    for key, what in (("list", "ftstudio: list_runs + every summary"), ("list again", "  the same again (cached)"),
                      ("name", "ftstudio: the next run's default name"), ("name again", "  the same again")):
        print(f"  {what:<46} {med[key]:.3f} s   ×{med[key] / med['plain']:.2f} the plain loop")


if __name__ == "__main__":
    main()
