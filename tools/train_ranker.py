"""Train kiln's fix-commit ranker on a development set and export it as package data.

    .venv/bin/python tools/train_ranker.py --data ../shared/fixbench \
        [--out src/kiln/research/ranker.json] [--c 1.0]

Fits a class-balanced logistic regression (scikit-learn, a dev dependency) on every
candidate of every CVE in DIR, prints the leave-one-repo-out recall first (each
repository's CVEs ranked by a model trained on the other repositories: the number to
report), then writes the model trained on all of DIR as a small JSON file that
``kiln.research.rank.load_model`` reads without scikit-learn. Only the development set
is read; the held-out set must never be passed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiln.errors import KilnError
from kiln.fileio import atomic_write
from kiln.research.train import DiffCache, collect, fit_ranker, leave_one_repo_out, recall_at

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src/kiln/research/ranker.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="the development set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation")
    args = parser.parse_args(argv)
    try:
        data, _seconds = collect(args.data, None)
    except KilnError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return exc.exit_code
    with DiffCache(args.data) as diffs:
        cv = leave_one_repo_out(data, diffs, c=args.c)
        ranker = fit_ranker(data, diffs, c=args.c)
    every = recall_at(list(cv.values()))
    clean = recall_at([cv[d.cve] for d in data if not d.leaky])
    print(f"leave-one-repo-out: {json.dumps(every)}")
    print(f"leave-one-repo-out, without leaky records: {json.dumps(clean)}")
    model = ranker
    model.meta["loro"] = {k: round(v, 4) for k, v in every.items()}
    model.meta["loro_clean"] = {k: round(v, 4) for k, v in clean.items()}
    atomic_write(args.out, (json.dumps(model.to_json(), indent=1) + "\n").encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
