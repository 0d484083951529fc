"""The two rankers: Prospector's published rules (the baseline) and kiln's learned model.

The baseline adds Prospector's rule weights (SAP/project-kb, ``rules/rules.py``,
phase 1): the CVE id in the message 64, a commit the advisory references 64, a
cross-referenced bug 32 or GitHub issue/PR 32, relevant files 8, relevant words in the
message 8, advisory keywords in the paths 4 or in the message 4, security keywords 4,
an issue number in the message 2. Ties go to the commit closest to the publication.
Prospector's rules that read linked issue pages or every diff are not computed.

The learned ranker has two stages: a linear model over ``features.FEATURE_NAMES``
(standardised) orders every candidate, and a second model (linear, or a sum of
regression trees: ``TreeModel``) re-orders the first ones with their diffs. Both are
trained by ``tools/train_ranker.py`` on the development set and shipped as
``ranker.json`` in this package: scoring needs no scikit-learn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kiln.errors import InputError, Location
from kiln.jsonlimits import parse_json
from kiln.research.features import DIFF_FEATURE_NAMES, FEATURE_NAMES, Features

PROSPECTOR_WEIGHTS: dict[str, float] = {
    "VULN_ID_IN_MESSAGE": 64,
    "COMMIT_IN_REFERENCE": 64,
    "XREF_BUG": 32,
    "XREF_GH": 32,
    "CHANGES_RELEVANT_FILES": 8,
    "RELEVANT_WORDS_IN_MESSAGE": 8,
    "ADV_KEYWORDS_IN_FILES": 4,
    "ADV_KEYWORDS_IN_MSG": 4,
    "SEC_KEYWORDS_IN_MESSAGE": 4,
    "GITHUB_ISSUE_IN_MESSAGE": 2,
}
MAX_MODEL_BYTES = 8 << 20  # bagged trees: 8 fits of 150 trees are about 1.3 MB


def prospector_rules(features: Features, message: str) -> dict[str, float]:
    """The Prospector rules that fire for one candidate, with their weights."""
    v = features.values
    fired = {
        "VULN_ID_IN_MESSAGE": v.get("cve_in_message", 0.0) > 0,
        "COMMIT_IN_REFERENCE": v.get("commit_in_advisory", 0.0) > 0,
        "XREF_BUG": v.get("xref_bug", 0.0) > 0,
        "XREF_GH": v.get("xref_issue", 0.0) > 0,
        "CHANGES_RELEVANT_FILES": v.get("files_in_description", 0.0) > 0,
        "RELEVANT_WORDS_IN_MESSAGE": v.get("words_in_message", 0.0) >= 0.3,
        "ADV_KEYWORDS_IN_FILES": v.get("code_in_paths", 0.0) > 0,
        "ADV_KEYWORDS_IN_MSG": v.get("code_in_message", 0.0) > 0,
        "SEC_KEYWORDS_IN_MESSAGE": v.get("sec_keywords", 0.0) > 0,
        "GITHUB_ISSUE_IN_MESSAGE": bool(re.search(r"#\d+\b", message)),
    }
    return {name: PROSPECTOR_WEIGHTS[name] for name, on in fired.items() if on}


def baseline_score(features: Features, message: str) -> float:
    """Prospector's relevance: the sum of the weights of the rules that fire."""
    return sum(prospector_rules(features, message).values())


@dataclass(frozen=True)
class LinearModel:
    """A standardised linear scorer: ``sum(coef * (x - mean) / scale) + intercept``."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    meta: dict[str, Any]

    def score(self, features: Features) -> float:
        """The model's score of one candidate (higher ranks first)."""
        total = self.intercept
        for name, mean, scale, coef in zip(
            self.features, self.mean, self.scale, self.coef, strict=True
        ):
            total += coef * (features.values.get(name, 0.0) - mean) / scale
        return total

    def contributions(self, features: Features) -> dict[str, float]:
        """Each feature's share of the score, for the evidence a reviewer reads."""
        return {
            name: coef * (features.values.get(name, 0.0) - mean) / scale
            for name, mean, scale, coef in zip(
                self.features, self.mean, self.scale, self.coef, strict=True
            )
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``linear_from_json`` reads."""
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "meta": self.meta,
        }


def _floats(data: dict[str, Any], key: str, n: int, where: Location) -> tuple[float, ...]:
    values = data.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise InputError(f"{key!r} must be a list of {n} numbers", location=where)
    out: list[float] = []
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InputError(f"{key!r} holds a non-number", location=where)
        out.append(float(value))
    return tuple(out)


def _feature_names(data: dict[str, Any], where: Location) -> list[str]:
    """A model's ``features``: a list of names of features kiln computes."""
    names = data.get("features")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("'features' must be a list of names", location=where)
    unknown = sorted(set(names) - set(FEATURE_NAMES) - set(DIFF_FEATURE_NAMES))
    if unknown:
        raise InputError(f"names unknown features: {', '.join(unknown)}", location=where)
    return names


def linear_from_json(data: Any, where: Location) -> LinearModel:
    """Validate one linear model; the features it names must be ones kiln computes."""
    if not isinstance(data, dict):
        raise InputError("a model must be a JSON object", location=where)
    names = _feature_names(data, where)
    n = len(names)
    scale = _floats(data, "scale", n, where)
    if any(s <= 0 for s in scale):
        raise InputError("'scale' must be positive", location=where)
    intercept = data.get("intercept", 0.0)
    if isinstance(intercept, bool) or not isinstance(intercept, int | float):
        raise InputError("'intercept' must be a number", location=where)
    meta = data.get("meta")
    return LinearModel(
        features=tuple(names),
        mean=_floats(data, "mean", n, where),
        scale=scale,
        coef=_floats(data, "coef", n, where),
        intercept=float(intercept),
        meta=meta if isinstance(meta, dict) else {},
    )


MAX_TREES = 2000
MAX_NODES = 1 << 16  # over all trees of one model


@dataclass(frozen=True)
class TreeModel:
    """A sum of regression trees (gradient boosting, exported from scikit-learn's
    ``HistGradientBoostingClassifier``): ``baseline + sum(leaf value of each tree)``.

    Each tree is a tuple of nodes ``(feature, threshold, left, right, value)``; a node
    whose ``feature`` is -1 is a leaf. A candidate goes left when its value of
    ``features[feature]`` is at most ``threshold``. Children always come after their
    parent, so scoring ends (checked when loading)."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[tuple[tuple[int, float, int, int, float], ...], ...]
    meta: dict[str, Any]

    def score(self, features: Features) -> float:
        """The model's score of one candidate (higher ranks first)."""
        x = [features.values.get(name, 0.0) for name in self.features]
        total = self.baseline
        for tree in self.trees:
            i = 0
            while True:
                feature, threshold, left, right, value = tree[i]
                if feature < 0:
                    total += value
                    break
                i = left if x[feature] <= threshold else right
        return total

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``trees_from_json`` reads."""
        return {
            "kind": "trees",
            "features": list(self.features),
            "baseline": self.baseline,
            "trees": [[list(node) for node in tree] for tree in self.trees],
            "meta": self.meta,
        }


def _number(value: Any, what: str, where: Location) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number", location=where)
    return float(value)


def trees_from_json(data: dict[str, Any], where: Location) -> TreeModel:
    """Validate a tree model: known features, bounded size, children after parents."""
    names = _feature_names(data, where)
    raw = data.get("trees")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_TREES:
        raise InputError(f"'trees' must be a list of 1 to {MAX_TREES} trees", location=where)
    trees: list[tuple[tuple[int, float, int, int, float], ...]] = []
    total = 0
    for t, tree in enumerate(raw):
        if not isinstance(tree, list) or not tree:
            raise InputError(f"tree {t} must be a non-empty list of nodes", location=where)
        total += len(tree)
        if total > MAX_NODES:
            raise InputError(f"more than {MAX_NODES} tree nodes", location=where)
        nodes: list[tuple[int, float, int, int, float]] = []
        for i, node in enumerate(tree):
            if not isinstance(node, list) or len(node) != 5:
                raise InputError(f"tree {t} node {i} must be 5 values", location=where)
            feature, left, right = node[0], node[2], node[3]
            if not all(
                isinstance(v, int) and not isinstance(v, bool) for v in (feature, left, right)
            ):
                raise InputError(
                    f"tree {t} node {i}: feature and children must be integers", location=where
                )
            threshold = _number(node[1], f"tree {t} node {i} threshold", where)
            value = _number(node[4], f"tree {t} node {i} value", where)
            if feature != -1 and not (
                0 <= feature < len(names) and i < left < len(tree) and i < right < len(tree)
            ):
                raise InputError(
                    f"tree {t} node {i}: feature or child index out of range "
                    "(children must follow their parent)",
                    location=where,
                )
            nodes.append((feature, threshold, left, right, value))
        trees.append(tuple(nodes))
    meta = data.get("meta")
    return TreeModel(
        features=tuple(names),
        baseline=_number(data.get("baseline", 0.0), "'baseline'", where),
        trees=tuple(trees),
        meta=meta if isinstance(meta, dict) else {},
    )


FUSION_K = 60.0  # reciprocal rank fusion's constant (Cormack et al. 2009), not tuned


@dataclass(frozen=True)
class FusionModel:
    """Several models' orders of the same candidates fused by reciprocal rank:
    a candidate scores the mean of ``FUSION_K / (FUSION_K + its 0-based rank)`` over
    the members (1.0: first under every member; the same order as the textbook
    ``sum(1 / (k + rank))``, on a scale a reviewer can read). Models
    that err differently (a linear model and trees) agree on the fix more often than
    either alone ranks it first. Scores exist only for a whole set (``score_all``)."""

    members: tuple[LinearModel | TreeModel, ...]
    meta: dict[str, Any]

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature a member reads, in first-seen order."""
        return tuple(dict.fromkeys(n for m in self.members for n in m.features))

    def score_all(self, features: Sequence[Features]) -> list[float]:
        """The fused score of each candidate of one set."""
        fused = [0.0] * len(features)
        for member in self.members:
            scores = [member.score(f) for f in features]
            order = sorted(range(len(features)), key=lambda i: -scores[i])
            for position, i in enumerate(order):
                fused[i] += FUSION_K / (FUSION_K + position) / len(self.members)
        return fused

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``stage_from_json`` reads."""
        return {"kind": "fusion", "members": [m.to_json() for m in self.members], "meta": self.meta}


Model = LinearModel | TreeModel | FusionModel


def score_all(model: Model, features: Sequence[Features]) -> list[float]:
    """``model``'s score of each candidate of one set (fusion needs the whole set)."""
    if isinstance(model, FusionModel):
        return model.score_all(features)
    return [model.score(f) for f in features]


def stage_from_json(data: Any, where: Location, *, nested: bool = False) -> Model:
    """A stage's model: linear (no ``kind``, or ``"linear"``), ``"trees"``, or a
    ``"fusion"`` of linear and tree models (not of other fusions)."""
    if not isinstance(data, dict):
        raise InputError("a model must be a JSON object", location=where)
    kind = data.get("kind", "linear")
    if kind == "trees":
        return trees_from_json(data, where)
    if kind == "fusion" and not nested:
        members = data.get("members")
        if not isinstance(members, list) or not 1 <= len(members) <= 8:
            raise InputError("'members' must be a list of 1 to 8 models", location=where)
        parsed = [stage_from_json(m, where, nested=True) for m in members]
        meta = data.get("meta")
        return FusionModel(
            members=tuple(m for m in parsed if not isinstance(m, FusionModel)),
            meta=meta if isinstance(meta, dict) else {},
        )
    if kind != "linear":
        raise InputError(f"unknown model kind {kind!r}", location=where)
    return linear_from_json(data, where)


@dataclass(frozen=True)
class Ranker:
    """kiln's ranker: ``stage1`` orders every candidate from cheap features; the first
    ``depth`` are then re-ordered by ``stage2``, which also reads their diffs."""

    stage1: LinearModel
    stage2: Model | None
    depth: int
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The document ``load_model`` reads (``ranker.json``)."""
        return {
            "format": "kiln-ranker/1",
            "stage1": self.stage1.to_json(),
            "stage2": self.stage2.to_json() if self.stage2 else None,
            "depth": self.depth,
            "meta": self.meta,
        }


def model_from_json(data: Any, where: Location) -> Ranker:
    """Validate a ranker document (format ``kiln-ranker/1``)."""
    if not isinstance(data, dict) or data.get("format") != "kiln-ranker/1":
        raise InputError("is not a kiln ranker (format kiln-ranker/1)", location=where)
    depth = data.get("depth", 0)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 1000:
        raise InputError("'depth' must be an integer from 0 to 1000", location=where)
    stage2 = data.get("stage2")
    meta = data.get("meta")
    return Ranker(
        stage1=linear_from_json(data.get("stage1"), where),
        stage2=stage_from_json(stage2, where) if stage2 is not None else None,
        depth=depth,
        meta=meta if isinstance(meta, dict) else {},
    )


def load_model(path: Path | None = None) -> Ranker:
    """The ranker at ``path``, or the one shipped in this package."""
    if path is None:
        data = resources.files("kiln.research").joinpath("ranker.json").read_bytes()
        where = "kiln/research/ranker.json"
    else:
        try:
            data = path.read_bytes()[: MAX_MODEL_BYTES + 1]
        except OSError as exc:
            raise InputError(
                f"cannot read the ranker: {exc.strerror}", location=Location(str(path))
            ) from exc
        where = str(path)
    parsed = parse_json(data, where=where, max_bytes=MAX_MODEL_BYTES, what="the ranker")
    return model_from_json(parsed, Location(where))
