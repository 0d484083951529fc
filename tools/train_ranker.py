"""Train kiln's fix-commit ranker on a development set and export it as package data.

    .venv/bin/python tools/train_ranker.py --data ../shared/fixbench \
        [--out src/kiln/research/ranker.json] [--c 1.0] [--variants base,+diff,fusion] [--nested]

Collects every CVE's candidate set in DIR, then chooses the feature set
(``kiln.research.train.VARIANTS``) by leave-one-repo-out over all of DIR: each variant
ranks each repository's CVEs with a model trained on the other repositories, and the
highest top-1 + top-5 + top-10 recall wins (ties to the earlier, simpler variant).
The chosen variant is trained on all of DIR and written as a small JSON file that
``kiln.research.rank.load_model`` reads without scikit-learn (scikit-learn is a dev
dependency). The leave-one-repo-out numbers printed for the chosen variant are the
number it was chosen on, so they are optimistic; ``--nested`` first runs the nested
cross-validation (the choice made again inside each outer training fold) and prints
its outer numbers: the honest estimate of this whole procedure. Only the development
set is read; the held-out set must never be passed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiln.errors import KilnError
from kiln.fileio import atomic_write
from kiln.research.train import (
    DEFAULT_VARIANTS,
    VARIANTS,
    DiffCache,
    choose_variant,
    collect,
    fit_ranker,
    nested_cv,
    parse_variants,
    recall_at,
)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src/kiln/research/ranker.json"


def _rounded(recall: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in recall.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="the development set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"feature sets to choose from, comma-separated ({', '.join(VARIANTS)})",
    )
    parser.add_argument("--nested", action="store_true", help="report nested CV first")
    args = parser.parse_args(argv)
    try:
        variants = parse_variants(args.variants)
        data, _seconds = collect(args.data, None)
    except KilnError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return exc.exit_code
    clean = [d.cve for d in data if not d.leaky]
    meta: dict[str, object] = {}
    with DiffCache(args.data) as diffs:
        if args.nested:
            nested = nested_cv(data, diffs, variants, c=args.c)
            choice = nested.full
            outer = recall_at(list(nested.ranks.values()))
            outer_clean = recall_at([nested.ranks[cve] for cve in clean])
            picks = {repo: ch.picked for repo, ch in nested.choices.items()}
            print(f"nested, outer leave-one-repo-out: {json.dumps(outer)}")
            print(f"nested, without leaky records: {json.dumps(outer_clean)}")
            print(f"nested, picked per outer fold: {json.dumps(picks)}")
            meta["nested"] = _rounded(outer)
            meta["nested_clean"] = _rounded(outer_clean)
            meta["nested_picks"] = picks
        else:
            choice = choose_variant(data, diffs, variants, c=args.c)
        names = [v.name for v in variants]
        for name in names:
            print(f"leave-one-repo-out, {name}: {json.dumps(choice.recall[name])}")
        print(f"chosen: {choice.picked}")
        ranker = fit_ranker(data, diffs, c=args.c, variant=VARIANTS[choice.picked])
    ranks = choice.ranks[choice.picked]
    every = recall_at(list(ranks.values()))
    ranker.meta.update(meta)
    ranker.meta["variants"] = {n: _rounded(choice.recall[n]) for n in names}
    ranker.meta["loro"] = _rounded(every)
    ranker.meta["loro_clean"] = _rounded(recall_at([ranks[cve] for cve in clean]))
    atomic_write(args.out, (json.dumps(ranker.to_json(), indent=1) + "\n").encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
