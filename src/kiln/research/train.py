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

from kiln.errors import InputError
from kiln.research.features import DIFF_FEATURE_NAMES, FEATURE_NAMES, Features, extract_diff
from kiln.research.finder import (
    CandidateSet,
    Ranked,
    collect_candidates,
    diff_reader,
    rank,
    rank_kiln,
)
from kiln.research.gitrepo import Commit, GitRepo, open_repo
from kiln.research.rank import FUSION_K, FusionModel, LinearModel, Model, Ranker, TreeModel
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


# Gradient boosting for stage 2, hyper-parameters fixed a priori (never tuned on the
# development set's folds): shallow trees, a small learning rate, leaves of at least
# 20 candidates, no early stopping (a random validation split would make fits differ).
GBDT_PARAMS: dict[str, float | int] = {
    "max_iter": 150,
    "learning_rate": 0.05,
    "max_depth": 3,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
}


# Bagging (Breiman 1996) for the tree learner: the trees are fitted ``TREE_BAGS``
# times, each on a bootstrap sample of the CVEs, and their scores averaged. One fit's
# order of the candidates at ranks 5-30 moves with any small change of its training
# data (one more candidate in one CVE moved a fix from 7th to 27th); the average of
# several moves less. 8 was fixed before measuring, not tuned.
TREE_BAGS = 8


def fit_trees(
    sets: Sequence[tuple[list[list[float]], list[bool]]],
    names: Sequence[str],
    *,
    bags: int = TREE_BAGS,
) -> TreeModel:
    """Gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``) on the
    candidates' feature rows, label: the commit is a fix. Every CVE weighs the same, and
    inside a CVE its fixes weigh as much as its other candidates together. With
    ``bags`` > 1, one fit per bootstrap sample of the CVEs (seeded, so a training run is
    repeatable), averaged. The trees are exported as one ``TreeModel`` (the average's
    trees with their leaf values divided by ``bags``) that scores without scikit-learn."""
    import numpy as np  # noqa: PLC0415

    if bags <= 1:
        return _fit_trees_once(sets, names)
    # the sample is drawn from every CVE; one whose fix is not among its candidates
    # (or whose candidates are all fixes) adds no row to the fit it is drawn into
    rng = np.random.default_rng(0)
    fits = [
        _fit_trees_once([sets[i] for i in rng.integers(0, len(sets), len(sets))], names)
        for _ in range(bags)
    ]
    return TreeModel(
        features=tuple(names),
        baseline=sum(f.baseline for f in fits) / bags,
        trees=tuple(
            tuple((n[0], n[1], n[2], n[3], n[4] / bags) for n in tree)
            for f in fits
            for tree in f.trees
        ),
        meta={**fits[0].meta, "bags": bags, "bootstrap": "CVEs, numpy default_rng(0)"},
    )


def _fit_trees_once(
    sets: Sequence[tuple[list[list[float]], list[bool]]], names: Sequence[str]
) -> TreeModel:
    import numpy as np  # noqa: PLC0415
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]  # noqa: PLC0415

    rows: list[list[float]] = []
    labels: list[int] = []
    weights: list[float] = []
    for x, flags in sets:
        n_pos = sum(flags)
        if not n_pos or n_pos == len(flags):
            continue
        n_neg = len(flags) - n_pos
        for row, flag in zip(x, flags, strict=True):
            rows.append(row)
            labels.append(int(flag))
            weights.append(0.5 / n_pos if flag else 0.5 / n_neg)
    model = HistGradientBoostingClassifier(**GBDT_PARAMS, early_stopping=False, random_state=0)
    model.fit(np.asarray(rows, dtype=float), np.asarray(labels), sample_weight=np.asarray(weights))
    trees = []
    for (predictor,) in model._predictors:
        trees.append(
            tuple(
                (
                    -1 if node["is_leaf"] else int(node["feature_idx"]),
                    float(node["num_threshold"]),
                    int(node["left"]),
                    int(node["right"]),
                    float(node["value"]),
                )
                for node in predictor.nodes
            )
        )
    return TreeModel(
        features=tuple(names),
        baseline=float(np.ravel(model._baseline_prediction)[0]),
        trees=tuple(trees),
        meta={"trainer": "sklearn HistGradientBoostingClassifier", **GBDT_PARAMS},
    )


DiffSource = Callable[[str, str], str | None]  # (repo, sha) -> diff


# Features added in issue #17's second round (engineer K). Whether a ranker uses them
# is chosen by ``nested_cv``/``choose_variant``, never by the outer test repositories.
MESSAGE_EXTRA = ("security_reference", "path_part_in_description")
DIFF_EXTRA = ("code_in_hunk_headers", "cwe_code_added", "words_in_added")
# Third round (issue #17): stage 1's order as a stage-2 feature, for the tree learner
RANK_EXTRA = ("stage1_rank",)
_BASE1 = tuple(n for n in FEATURE_NAMES if n not in MESSAGE_EXTRA)
_BASE2 = tuple(n for n in DIFF_FEATURE_NAMES if n not in DIFF_EXTRA + RANK_EXTRA)
_DIFF2 = tuple(n for n in DIFF_FEATURE_NAMES if n not in RANK_EXTRA)


@dataclass(frozen=True)
class Variant:
    """A feature set: ``stage1`` reads every candidate, ``stage2`` the first ``depth``."""

    name: str
    stage1: tuple[str, ...]
    stage2: tuple[str, ...]
    # stage 2's learner: "linear" (pairwise), "gbdt" (fit_trees) or "fusion" (both)
    learner: str = "linear"
    depth: int = DEPTH  # candidates stage 2 re-ranks


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("base", _BASE1, (*_BASE1, *_BASE2)),
        Variant("+diff", _BASE1, (*_BASE1, *_DIFF2)),
        Variant("+message", FEATURE_NAMES, (*FEATURE_NAMES, *_BASE2)),
        Variant("+both", FEATURE_NAMES, (*FEATURE_NAMES, *_DIFF2)),
        Variant("gbdt", _BASE1, (*_BASE1, *_DIFF2), "gbdt"),
        Variant("gbdt200", _BASE1, (*_BASE1, *_DIFF2), "gbdt", 200),
        Variant("+diff200", _BASE1, (*_BASE1, *_DIFF2), "linear", 200),
        Variant("gbdt+rank", _BASE1, (*_BASE1, *DIFF_FEATURE_NAMES), "gbdt"),
        Variant("fusion", _BASE1, (*_BASE1, *_DIFF2), "fusion"),
        Variant("fusion+message", FEATURE_NAMES, (*FEATURE_NAMES, *_DIFF2), "fusion"),
    )
}
DEFAULT_VARIANTS = ("base", "+diff", "fusion")


def parse_variants(text: str) -> list[Variant]:
    """The variants a comma-separated ``--variants`` value names, in its order."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise InputError(
            f"--variants: unknown {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(VARIANTS)}"
        )
    return [VARIANTS[n] for n in names]


def _scorer(model: LinearModel) -> Callable[[Features, Commit], float]:
    def score(features: Features, _commit: Commit) -> float:
        return model.score(features)

    return score


def fit_variants(
    data: Sequence[Labelled],
    diff_of: DiffSource,
    variants: Sequence[Variant],
    *,
    depth: int | None = None,
    c: float = 1.0,
) -> dict[str, Ranker]:
    """One ranker per variant, trained on ``data``: stage 1 on every candidate, then
    stage 2 on stage 1's first ``depth`` with their diffs. Variants with the same stage-1
    features share stage 1 (the same fit, so the same result, computed once)."""
    out: dict[str, Ranker] = {}
    by_stage1: dict[tuple[str, ...], list[Variant]] = {}
    for v in variants:
        by_stage1.setdefault(v.stage1, []).append(v)
    for names1, group in by_stage1.items():
        stage1 = fit_pairwise(
            [
                (
                    [f.vector(names1) for f in d.cset.features],
                    [cm.sha in d.fixes for cm in d.cset.commits],
                )
                for d in data
            ],
            names1,
            c=c,
        )
        deepest = max(depth or v.depth for v in group)
        heads: list[tuple[list[Features], list[bool]]] = []
        for d in data:
            head = rank(d.cset, _scorer(stage1))[:deepest]
            feats = [r.features.copy() for r in head]
            extract_diff(d.cset.advisory, feats, [diff_of(d.repo, r.commit.sha) for r in head])
            heads.append((feats, [r.commit.sha in d.fixes for r in head]))
        for v in group:
            n = depth or v.depth
            sets = [([f.vector(v.stage2) for f in feats[:n]], flags[:n]) for feats, flags in heads]
            stage2: Model
            if v.learner == "gbdt":
                stage2 = fit_trees(sets, v.stage2)
            elif v.learner == "fusion":
                stage2 = FusionModel(
                    members=(fit_pairwise(sets, v.stage2, c=c), fit_trees(sets, v.stage2)),
                    meta={"fusion": "reciprocal rank", "k": FUSION_K},
                )
            else:
                stage2 = fit_pairwise(sets, v.stage2, c=c)
            out[v.name] = Ranker(
                stage1=stage1,
                stage2=stage2,
                depth=n,
                meta={
                    "cves": len(data),
                    "repos": len({d.repo for d in data}),
                    "C": c,
                    "variant": v.name,
                },
            )
    return out


def fit_ranker(
    data: Sequence[Labelled],
    diff_of: DiffSource,
    *,
    depth: int | None = None,
    c: float = 1.0,
    variant: Variant = VARIANTS["base"],
) -> Ranker:
    """Stage 1 on every candidate, then stage 2 on stage 1's first ``depth`` with diffs."""
    return fit_variants(data, diff_of, [variant], depth=depth, c=c)[variant.name]


def leave_one_repo_out(
    data: Sequence[Labelled],
    diff_of: DiffSource,
    *,
    c: float = 1.0,
    variant: Variant = VARIANTS["base"],
) -> dict[str, int | None]:
    """Each CVE's first-hit rank under a ranker trained without its repository."""
    fits = _Fits(data, diff_of, [variant], c)
    return _held_out_ranks(data, diff_of, fits, frozenset())[variant.name]


def selection_score(recall: dict[str, float]) -> float:
    """What the inner cross-validation maximises: top-1 + top-5 + top-10 recall."""
    return recall["top1"] + recall["top5"] + recall["top10"]


class _Fits:
    """Rankers per set of excluded repositories, fitted once: in the nested loop the
    inner fold (outer A, inner B) trains on the same CVEs as (outer B, inner A)."""

    def __init__(
        self, data: Sequence[Labelled], diff_of: DiffSource, variants: Sequence[Variant], c: float
    ) -> None:
        self.data, self.diff_of, self.variants, self.c = data, diff_of, variants, c
        self._memo: dict[frozenset[str], dict[str, Ranker]] = {}

    def without(self, repos: frozenset[str]) -> dict[str, Ranker]:
        if repos not in self._memo:
            train = [d for d in self.data if d.repo not in repos]
            self._memo[repos] = fit_variants(train, self.diff_of, self.variants, c=self.c)
        return self._memo[repos]


def _held_out_ranks(
    data: Sequence[Labelled], diff_of: DiffSource, fits: _Fits, excluded: frozenset[str]
) -> dict[str, dict[str, int | None]]:
    """Leave-one-repo-out over the repositories not in ``excluded``, for every variant:
    variant name -> CVE -> first-hit rank."""
    out: dict[str, dict[str, int | None]] = {v.name: {} for v in fits.variants}
    for repo in sorted({d.repo for d in data} - excluded):
        rankers = fits.without(excluded | {repo})
        for item in data:
            if item.repo != repo:
                continue
            for name, ranker in rankers.items():
                ranked = rank_kiln(item.cset, ranker, partial(diff_of, repo))
                out[name][item.cve] = first_hit(ranked, item.fixes)
    return out


@dataclass(frozen=True)
class Choice:
    """The variant an inner leave-one-repo-out picked, with every variant's recall."""

    picked: str
    recall: dict[str, dict[str, float]]
    ranks: dict[str, dict[str, int | None]]  # variant -> CVE -> first-hit rank


def _choose(ranks: dict[str, dict[str, int | None]], order: Sequence[str]) -> Choice:
    recall = {name: recall_at(list(ranks[name].values())) for name in order}
    best = max(order, key=lambda name: (selection_score(recall[name]), -order.index(name)))
    return Choice(best, recall, ranks)


def choose_variant(
    data: Sequence[Labelled],
    diff_of: DiffSource,
    variants: Sequence[Variant],
    *,
    c: float = 1.0,
) -> Choice:
    """Leave-one-repo-out over all of ``data`` per variant; the highest
    ``selection_score`` wins, ties to the earlier (simpler) variant."""
    fits = _Fits(data, diff_of, variants, c)
    ranks = _held_out_ranks(data, diff_of, fits, frozenset())
    return _choose(ranks, [v.name for v in variants])


@dataclass(frozen=True)
class Nested:
    """Nested cross-validation: each CVE's rank under the procedure (inner choice,
    then a ranker of the chosen variant trained without the CVE's repository), and per
    outer repository the inner choice."""

    ranks: dict[str, int | None]
    choices: dict[str, Choice]
    full: Choice


def nested_cv(
    data: Sequence[Labelled],
    diff_of: DiffSource,
    variants: Sequence[Variant],
    *,
    c: float = 1.0,
) -> Nested:
    """Outer leave-one-repo-out; inside each outer training fold an inner
    leave-one-repo-out over the remaining repositories picks the variant, which is then
    trained on the whole outer training fold and ranks the outer repository's CVEs.
    Nothing is chosen on the outer repository. ``full`` is the choice on all of
    ``data`` (what a ranker trained on all of it should use)."""
    fits = _Fits(data, diff_of, variants, c)
    order = [v.name for v in variants]
    ranks: dict[str, int | None] = {}
    choices: dict[str, Choice] = {}
    for repo in sorted({d.repo for d in data}):
        outer_out = frozenset({repo})
        inner = _held_out_ranks([d for d in data if d.repo != repo], diff_of, fits, outer_out)
        choice = _choose(inner, order)
        choices[repo] = choice
        ranker = fits.without(outer_out)[choice.picked]
        for item in data:
            if item.repo == repo:
                ranked = rank_kiln(item.cset, ranker, partial(diff_of, repo))
                ranks[item.cve] = first_hit(ranked, item.fixes)
        print(f"nested: {repo} picked {choice.picked}", file=sys.stderr, flush=True)
    # the inner loop of a fit on every repository (what tools/train_ranker.py ships):
    # leave-one-repo-out over all of ``data``, from the outer folds' rankers
    full = _choose(_held_out_ranks(data, diff_of, fits, frozenset()), order)
    return Nested(ranks, choices, full)


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
