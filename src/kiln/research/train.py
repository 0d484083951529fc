"""Training and measuring the learned ranker (development only: needs scikit-learn).

``fit_linear`` fits a class-balanced logistic regression on the candidates' feature
vectors (label: the commit is one of the CVE's fix commits) and returns a
``LinearModel`` that ``kiln.research.rank`` scores without scikit-learn. ``recall_at``
and ``leave_one_repo_out`` are what ``bench/fixcommits.py`` and ``tools/train_ranker.py``
report: cross-validation holds whole repositories out, so no CVE is ranked by a model
that saw its repository.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kiln.research.features import DIFF_FEATURE_NAMES, FEATURE_NAMES, extract_diff
from kiln.research.finder import (
    CandidateSet,
    Ranked,
    collect_candidates,
    diff_reader,
    rank,
    rank_kiln,
)
from kiln.research.gitrepo import GitRepo, open_repo
from kiln.research.rank import LinearModel, Ranker
from kiln.research.record import load_records

KS = (1, 5, 10)
# Negatives kept per CVE when fitting: every candidate of a small set, else a sample
# spread over the set (deterministic: every n-th), so large repositories do not drown
# the small ones.
MAX_NEGATIVES = 1500
DEPTH = 100  # candidates stage 2 re-ranks with their diffs


@dataclass(frozen=True)
class Labelled:
    """A CVE's candidate set with its answer, for training and scoring only."""

    cve: str
    repo: str
    leaky: bool
    fixes: frozenset[str]
    cset: CandidateSet


def first_hit(ranked: Sequence[Ranked], fixes: frozenset[str]) -> int | None:
    """The 1-based rank of the first fix commit, or None when none is a candidate."""
    for i, r in enumerate(ranked, 1):
        if r.commit.sha in fixes:
            return i
    return None


def recall_at(ranks: Sequence[int | None]) -> dict[str, float]:
    """Top-1/5/10 recall and whether the fix was a candidate at all."""
    n = len(ranks) or 1
    out = {f"top{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
    out["in_candidates"] = sum(1 for r in ranks if r is not None) / n
    out["cves"] = float(len(ranks))
    return out


def fit_pairwise(
    sets: Sequence[tuple[list[list[float]], list[bool]]],
    names: Sequence[str],
    *,
    c: float = 1.0,
) -> LinearModel:
    """A pairwise logistic regression (a linear RankNet) over ``names``.

    ``sets`` holds one (feature rows, is-fix flags) pair per CVE. Each training row is
    the difference between a fix commit's standardised features and another candidate's
    of the same CVE (and its negation), so the model learns what puts a fix above its
    neighbours rather than a per-CVE base rate. Every CVE weighs the same; negatives are
    a deterministic spread sample of at most ``MAX_NEGATIVES`` per CVE.
    """
    # scikit-learn (and numpy) are dev dependencies: only training imports them
    import numpy as np  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]  # noqa: PLC0415

    every = np.asarray([row for rows, _ in sets for row in rows], dtype=float)
    mean = every.mean(axis=0)
    scale = every.std(axis=0)
    scale[scale == 0] = 1.0
    diffs = []
    weights: list[float] = []
    for rows, flags in sets:
        x = (np.asarray(rows, dtype=float) - mean) / scale
        is_fix = np.asarray(flags, dtype=bool)
        if not is_fix.any() or is_fix.all():
            continue
        negatives = np.flatnonzero(~is_fix)
        negatives = negatives[:: max(1, len(negatives) // MAX_NEGATIVES)]
        positives = np.flatnonzero(is_fix)
        pairs = (x[positives][:, None, :] - x[negatives][None, :, :]).reshape(-1, x.shape[1])
        diffs.append(pairs)
        weights.extend([1.0 / len(pairs)] * len(pairs))
    pos = np.concatenate(diffs)
    w = np.asarray(weights) * len(diffs)
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=5000)
    model.fit(
        np.concatenate([pos, -pos]),
        np.r_[np.ones(len(pos)), np.zeros(len(pos))],
        sample_weight=np.r_[w, w],
    )
    return LinearModel(
        features=tuple(names),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=0.0,
        meta={"trainer": "sklearn LogisticRegression on pairwise differences", "C": c},
    )


DiffSource = Callable[[str, str], str | None]  # (repo, sha) -> diff


def fit_ranker(
    data: Sequence[Labelled], diff_of: DiffSource, *, depth: int = DEPTH, c: float = 1.0
) -> Ranker:
    """Stage 1 on every candidate, then stage 2 on stage 1's first ``depth`` with diffs."""
    stage1 = fit_pairwise(
        [
            ([f.vector() for f in d.cset.features], [cm.sha in d.fixes for cm in d.cset.commits])
            for d in data
        ],
        FEATURE_NAMES,
        c=c,
    )
    names = (*FEATURE_NAMES, *DIFF_FEATURE_NAMES)
    sets: list[tuple[list[list[float]], list[bool]]] = []
    for d in data:
        head = rank(d.cset, lambda f, _c: stage1.score(f))[:depth]
        feats = [r.features.copy() for r in head]
        extract_diff(d.cset.advisory, feats, [diff_of(d.repo, r.commit.sha) for r in head])
        sets.append(([f.vector(names) for f in feats], [r.commit.sha in d.fixes for r in head]))
    stage2 = fit_pairwise(sets, names, c=c)
    return Ranker(
        stage1=stage1,
        stage2=stage2,
        depth=depth,
        meta={"cves": len(data), "repos": len({d.repo for d in data}), "C": c},
    )


def leave_one_repo_out(
    data: Sequence[Labelled], diff_of: DiffSource, *, c: float = 1.0
) -> dict[str, int | None]:
    """Each CVE's first-hit rank under a ranker trained without its repository."""
    out: dict[str, int | None] = {}
    for repo in sorted({d.repo for d in data}):
        ranker = fit_ranker([d for d in data if d.repo != repo], diff_of, c=c)
        for item in data:
            if item.repo == repo:
                ranked = rank_kiln(item.cset, ranker, partial(diff_of, repo))
                out[item.cve] = first_hit(ranked, item.fixes)
    return out


class DiffCache:
    """Diffs of candidate commits of the data set's repositories, read once each."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._stack = ExitStack()
        self._repos: dict[str, GitRepo] = {}
        self._diffs: dict[tuple[str, str], str | None] = {}

    def __enter__(self) -> DiffCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __call__(self, repo: str, sha: str) -> str | None:
        key = (repo, sha)
        if key not in self._diffs:
            if repo not in self._repos:
                clone = self.data_dir / "repos" / f"{repo.rsplit('/', 1)[-1]}.git"
                self._repos[repo] = self._stack.enter_context(open_repo(clone))
            self._diffs[key] = diff_reader(self._repos[repo])(sha)
        return self._diffs[key]


def collect(data_dir: Path, only: str | None) -> tuple[list[Labelled], dict[str, float]]:
    """Every record's candidate set with its answer, and the seconds each took."""
    records = load_records(data_dir / "cves.jsonl")
    by_repo: dict[str, list[int]] = {}
    for i, b in enumerate(records):
        by_repo.setdefault(b.record.repo or "", []).append(i)
    data: list[Labelled] = []
    seconds: dict[str, float] = {}
    for repo, indexes in sorted(by_repo.items()):
        if only and only not in repo:
            continue
        clone = data_dir / "repos" / f"{repo.rsplit('/', 1)[-1]}.git"
        with open_repo(clone) as git:
            for i in indexes:
                bench = records[i]
                started = time.monotonic()
                cset = collect_candidates(bench.record, git)
                seconds[bench.record.cve] = time.monotonic() - started
                data.append(Labelled(bench.record.cve, repo, bench.leaky, bench.fix_commits, cset))
                print(
                    f"{bench.record.cve} {repo}: {len(cset.commits)} candidates, "
                    f"{seconds[bench.record.cve]:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return data, seconds
