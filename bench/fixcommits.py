"""Fix-commit finding on a fixbench-style data set: Prospector's rules vs kiln's ranker.

    .venv/bin/python bench/fixcommits.py --data ../shared/fixbench [--json] [--cv]
        [--nested] [--variants base,+diff,fusion] [--model FILE] [--only REPO]

DIR holds ``cves.jsonl`` and ``repos/<name>.git`` (see fixbench's README). Both rankers
rank the same candidate set per CVE (kiln.research.finder). Printed: top-1/5/10 recall,
how often the fix was a candidate at all, the median candidate-set size and seconds per
CVE, on every record and on the records whose input does not leak the answer (no
``flags`` set). ``--cv`` adds kiln's ranker under leave-one-repo-out cross-validation
(a model with the given model's features, learner and depth trained without the
CVE's repository; needs scikit-learn): on the development set that is the honest
number for a fixed feature set, since the shipped model was trained on it
(``kiln_cv.learner`` names stage 2's learner). ``--nested`` adds the nested
cross-validation of the whole training procedure (``train.nested_cv``: inside each
outer training fold an inner leave-one-repo-out chooses among ``--variants``; the outer
fold is never looked at), with the variant each outer fold picked and the one the
inner loop picks on all of DIR.
``--json`` prints ``{"baseline": {...}, "kiln": {...}, ["kiln_cv": {...}],
["kiln_nested": {...}]}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

from kiln.errors import KilnError
from kiln.research.finder import rank, rank_kiln
from kiln.research.rank import FusionModel, TreeModel, baseline_score, load_model
from kiln.research.train import (
    DEFAULT_VARIANTS,
    VARIANTS,
    DiffCache,
    Labelled,
    Variant,
    collect,
    first_hit,
    leave_one_repo_out,
    nested_cv,
    parse_variants,
    recall_at,
)


def _summary(
    ranks: dict[str, int | None], data: list[Labelled], seconds: dict[str, float]
) -> dict[str, object]:
    clean = [d for d in data if not d.leaky]
    out: dict[str, object] = dict(recall_at([ranks[d.cve] for d in data]))
    out["clean"] = recall_at([ranks[d.cve] for d in clean])
    out["median_candidates"] = statistics.median(len(d.cset.commits) for d in data)
    out["seconds_per_cve"] = statistics.mean(seconds.values())
    out["max_seconds"] = max(seconds.values())
    out["by_repo"] = {
        repo: recall_at([ranks[d.cve] for d in data if d.repo == repo])
        for repo in sorted({d.repo for d in data})
    }
    return out


def _line(name: str, s: dict[str, object]) -> str:
    clean = s["clean"]
    assert isinstance(clean, dict)
    return (
        f"{name:<10} top1 {s['top1']:.2f} top5 {s['top5']:.2f} top10 {s['top10']:.2f} "
        f"in-set {s['in_candidates']:.2f} | without leaky records: top1 {clean['top1']:.2f} "
        f"top5 {clean['top5']:.2f} top10 {clean['top10']:.2f} (n={int(clean['cves'])})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cv", action="store_true", help="leave-one-repo-out for kiln")
    parser.add_argument("--nested", action="store_true", help="nested CV of the variant choice")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"feature sets --nested chooses from ({', '.join(VARIANTS)})",
    )
    parser.add_argument("--model", type=Path, help="a ranker JSON (default: the shipped one)")
    parser.add_argument("--only", help="only repositories whose name contains this")
    args = parser.parse_args(argv)
    try:
        variants = parse_variants(args.variants)
        model = load_model(args.model)
        data, seconds = collect(args.data, args.only)
    except KilnError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return exc.exit_code
    if not data:
        print("no records matched", file=sys.stderr)
        return 2
    base = {
        d.cve: first_hit(rank(d.cset, lambda f, c: baseline_score(f, c.message)), d.fixes)
        for d in data
    }
    kiln: dict[str, int | None] = {}
    kiln_seconds = dict(seconds)
    with DiffCache(args.data) as diffs:
        for d in data:
            started = time.monotonic()
            ranked = rank_kiln(d.cset, model, partial(diffs, d.repo))
            kiln_seconds[d.cve] += time.monotonic() - started
            kiln[d.cve] = first_hit(ranked, d.fixes)
        result: dict[str, object] = {
            "baseline": _summary(base, data, seconds),
            "kiln": _summary(kiln, data, kiln_seconds),
        }
        if args.cv:
            # the model's own feature set, retrained without each CVE's repository
            same = Variant(
                "model",
                model.stage1.features,
                model.stage2.features if model.stage2 else model.stage1.features,
                "fusion"
                if isinstance(model.stage2, FusionModel)
                else "gbdt"
                if isinstance(model.stage2, TreeModel)
                else "linear",
                model.depth,
            )
            cv_summary = _summary(leave_one_repo_out(data, diffs, variant=same), data, kiln_seconds)
            cv_summary["learner"] = same.learner  # stage 2's, retrained as shipped
            result["kiln_cv"] = cv_summary
        if args.nested:
            nested = nested_cv(data, diffs, variants)
            nested_summary = _summary(nested.ranks, data, kiln_seconds)
            nested_summary["picked"] = {repo: c.picked for repo, c in nested.choices.items()}
            nested_summary["inner"] = {repo: c.recall for repo, c in nested.choices.items()}
            nested_summary["chosen_on_all"] = nested.full.picked
            nested_summary["chosen_on_all_loro"] = nested.full.recall
            result["kiln_nested"] = nested_summary
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    for name, summary in result.items():
        assert isinstance(summary, dict)
        print(_line(name, summary))
        if "picked" in summary:
            print(f"{'':<10} picked per outer fold: {json.dumps(summary['picked'])}")
            print(f"{'':<10} chosen on all repositories: {summary['chosen_on_all']}")
    first = result["kiln"]
    assert isinstance(first, dict)
    print(
        f"{len(data)} CVEs, median {first['median_candidates']} candidates, "
        f"{first['seconds_per_cve']:.1f} s per CVE (max {first['max_seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
