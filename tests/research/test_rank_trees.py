"""Stage 2 as gradient-boosted trees (issue #17): the exported ``TreeModel`` scores
exactly as scikit-learn's fitted model does, survives its JSON round trip, and a
hostile tree file is refused with the reason.

Real components: scikit-learn's ``HistGradientBoostingClassifier`` fitted by
``kiln.research.train.fit_trees`` on synthetic rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import InputError, Location
from kiln.research.features import Features
from kiln.research.rank import (
    FUSION_K,
    FusionModel,
    TreeModel,
    load_model,
    score_all,
    stage_from_json,
)

NAMES = ("tfidf_message", "log_lines", "code_in_diff")


def _sets(seed: int = 0) -> list[tuple[list[list[float]], list[bool]]]:
    rng = random.Random(seed)
    sets = []
    for _ in range(20):
        rows = [[rng.random(), rng.random() * 5, float(rng.randint(0, 2))] for _ in range(40)]
        flags = [False] * len(rows)
        flags[0] = True
        rows[0][2] = 3.0  # the fix names the description's identifiers most often
        sets.append((rows, flags))
    return sets


def test_fit_trees_scores_like_scikit_learn_and_ranks_the_fix_first() -> None:
    pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    from kiln.research.train import GBDT_PARAMS, fit_trees

    sets = _sets()
    model = fit_trees(sets, NAMES, bags=1)
    # the same fit done directly: the exported trees must give its decision function
    rows = [r for x, _ in sets for r in x]
    labels = [int(f) for _, flags in sets for f in flags]
    weights = [0.5 if f else 0.5 / 39 for _, flags in sets for f in flags]
    reference = HistGradientBoostingClassifier(**GBDT_PARAMS, early_stopping=False, random_state=0)
    reference.fit(np.asarray(rows), np.asarray(labels), sample_weight=np.asarray(weights))
    expected = reference.decision_function(np.asarray(rows))
    got = [model.score(Features(dict(zip(NAMES, r, strict=True)))) for r in rows]
    assert got == pytest.approx(list(expected), abs=1e-9)
    reloaded = stage_from_json(json.loads(json.dumps(model.to_json())), Location("m.json"))
    assert isinstance(reloaded, TreeModel)
    assert [reloaded.score(Features(dict(zip(NAMES, r, strict=True)))) for r in rows] == got
    for x, _flags in _sets(seed=1):  # unseen sets: the fix (row 0) scores highest
        scores = [model.score(Features(dict(zip(NAMES, r, strict=True)))) for r in x]
        assert max(range(len(scores)), key=scores.__getitem__) == 0


def test_bagged_trees_score_the_mean_of_their_bootstrap_fits() -> None:
    pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    from kiln.research.train import GBDT_PARAMS, fit_trees

    sets = _sets()
    model = fit_trees(sets, NAMES, bags=3)
    assert len(model.trees) == 3 * int(GBDT_PARAMS["max_iter"])
    assert model.meta["bags"] == 3
    # each fit on a bootstrap sample of the CVEs (numpy's default_rng(0)), done directly
    rng = np.random.default_rng(0)
    rows = [r for x, _ in sets for r in x]
    expected = np.zeros(len(rows))
    for _ in range(3):
        drawn = [sets[i] for i in rng.integers(0, len(sets), len(sets))]
        fit = HistGradientBoostingClassifier(**GBDT_PARAMS, early_stopping=False, random_state=0)
        fit.fit(
            np.asarray([r for x, _ in drawn for r in x]),
            np.asarray([int(f) for _, flags in drawn for f in flags]),
            sample_weight=np.asarray([0.5 if f else 0.5 / 39 for _, fl in drawn for f in fl]),
        )
        expected += fit.decision_function(np.asarray(rows)) / 3
    got = [model.score(Features(dict(zip(NAMES, r, strict=True)))) for r in rows]
    assert got == pytest.approx(list(expected), abs=1e-9)
    # repeatable: the same data gives the same model
    assert fit_trees(sets, NAMES, bags=3).to_json() == model.to_json()
    for x, _flags in _sets(seed=1):  # unseen sets: the fix (row 0) scores highest
        scores = [model.score(Features(dict(zip(NAMES, r, strict=True)))) for r in x]
        assert max(range(len(scores)), key=scores.__getitem__) == 0


def _ranker(stage2: dict[str, Any]) -> bytes:
    stage1 = {"features": ["fix_word"], "mean": [0], "scale": [1], "coef": [1]}
    doc = {"format": "kiln-ranker/1", "stage1": stage1, "stage2": stage2, "depth": 5}
    return json.dumps(doc).encode()


LEAF = [-1, 0.0, 0, 0, 0.5]


@pytest.mark.parametrize(
    ("stage2", "message"),
    [
        ({"kind": "forest"}, "unknown model kind 'forest'"),
        ({"kind": "trees", "features": ["rm -rf"], "trees": [[LEAF]]}, "unknown features"),
        ({"kind": "trees", "features": ["fix_word"], "trees": []}, "'trees' must be a list"),
        (
            {"kind": "trees", "features": ["fix_word"], "trees": [[[0, 1.0, 0, 0, 0]]]},
            "out of range",
        ),
        (  # a cycle: a child pointing back at its parent would never end
            {
                "kind": "trees",
                "features": ["fix_word"],
                "trees": [[[0, 1.0, 1, 2, 0], [0, 0.5, 0, 0, 0], LEAF]],
            },
            "children must follow their parent",
        ),
        (
            {"kind": "trees", "features": ["fix_word"], "trees": [[[0, "x", 1, 2, 0]]]},
            "finite number",
        ),
        ({"kind": "trees", "features": ["fix_word"], "trees": [[[0, 1.0]]]}, "must be 5 values"),
        (
            {"kind": "trees", "features": ["fix_word"], "trees": [[[True, 0.0, 0, 0, 0]]]},
            "integers",
        ),
    ],
)
def test_hostile_tree_models_are_refused(
    tmp_path: Path, stage2: dict[str, Any], message: str
) -> None:
    path = tmp_path / "ranker.json"
    path.write_bytes(_ranker(stage2))
    with pytest.raises(InputError, match=message):
        load_model(path)


def test_a_valid_tree_model_loads_and_splits_on_its_threshold(tmp_path: Path) -> None:
    tree = [[0, 0.5, 1, 2, 0.0], [-1, 0.0, 0, 0, -1.0], [-1, 0.0, 0, 0, 2.0]]
    path = tmp_path / "ranker.json"
    path.write_bytes(
        _ranker({"kind": "trees", "features": ["fix_word"], "baseline": 0.25, "trees": [tree]})
    )
    stage2 = load_model(path).stage2
    assert isinstance(stage2, TreeModel)
    assert stage2.score(Features({"fix_word": 0.0})) == -0.75
    assert stage2.score(Features({"fix_word": 1.0})) == 2.25


def test_fusion_orders_by_reciprocal_rank_and_round_trips(tmp_path: Path) -> None:
    # member 1 orders a > b > c, member 2 puts a and c (tied) above b: a is first or
    # second under both and wins the fusion
    one = {"features": ["fix_word"], "mean": [0], "scale": [1], "coef": [1]}
    two = {"kind": "trees", "features": ["log_lines"], "trees": [[LEAF]]}
    tree = [[0, 0.5, 1, 2, 0.0], [-1, 0.0, 0, 0, 1.0], [-1, 0.0, 0, 0, 0.0]]
    two["trees"] = [tree]  # log_lines <= 0.5 scores 1, else 0
    path = tmp_path / "ranker.json"
    path.write_bytes(_ranker({"kind": "fusion", "members": [one, two]}))
    stage2 = load_model(path).stage2
    assert isinstance(stage2, FusionModel)
    assert stage2.features == ("fix_word", "log_lines")
    a = Features({"fix_word": 2.0, "log_lines": 0.0})
    b = Features({"fix_word": 1.0, "log_lines": 1.0})
    c = Features({"fix_word": 0.0, "log_lines": 0.0})
    scores = score_all(stage2, [b, c, a])
    assert max(range(3), key=scores.__getitem__) == 2
    # first under member 1, second under member 2 (c ties with a there and comes first)
    assert scores[2] == pytest.approx((1 + FUSION_K / (FUSION_K + 1)) / 2)
    again = stage_from_json(json.loads(json.dumps(stage2.to_json())), Location("x"))
    assert score_all(again, [b, c, a]) == scores


@pytest.mark.parametrize(
    ("stage2", "message"),
    [
        ({"kind": "fusion", "members": []}, "1 to 8 models"),
        (
            {"kind": "fusion", "members": [{"kind": "fusion", "members": []}]},
            "unknown model kind 'fusion'",
        ),
        ({"kind": "fusion", "members": [3]}, "must be a JSON object"),
    ],
)
def test_hostile_fusions_are_refused(tmp_path: Path, stage2: dict[str, Any], message: str) -> None:
    path = tmp_path / "ranker.json"
    path.write_bytes(_ranker(stage2))
    with pytest.raises(InputError, match=message):
        load_model(path)


def test_stage_two_reads_stage_one_order_as_a_feature() -> None:
    from kiln.research.features import Advisory, extract_diff
    from kiln.research.record import record_from_json
    from research.conftest import record_json

    rec = record_from_json(record_json(cve="CVE-2023-0001", description="x"), Location("r")).record
    feats = [Features({}) for _ in range(3)]
    extract_diff(Advisory.of(rec), feats, [None, None, None])
    assert [f.values["stage1_rank"] for f in feats] == [1.0, 0.5, pytest.approx(1 / 3)]
