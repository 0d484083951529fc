"""Stage 2's learners (issue #17, third round): gradient-boosted trees and the fusion
of the linear model with them, trained by ``kiln.research.train`` and shipped in the
ranker document. Real feature extraction and real scikit-learn fits on the synthetic
data of ``test_features_nested`` (one diff feature alone tells the fix apart)."""

from __future__ import annotations

import json

import pytest

from kiln.errors import Location
from kiln.research.finder import rank_kiln
from kiln.research.rank import FusionModel, LinearModel, TreeModel, model_from_json
from kiln.research.train import VARIANTS, first_hit, fit_ranker, leave_one_repo_out
from research.test_features_nested import _data, _diff, _diff_of

pytest.importorskip("sklearn")


@pytest.mark.parametrize(("name", "kind"), [("gbdt", TreeModel), ("fusion", FusionModel)])
def test_learners_rank_the_fix_first_on_unseen_repositories(name: str, kind: type) -> None:
    data = _data(repos=5, per_repo=6)  # 24 fixes per fold: leaves hold 20 candidates
    ranker = fit_ranker(data, _diff_of, variant=VARIANTS[name])
    assert ranker.stage2 is not None
    assert isinstance(ranker.stage2, kind)
    if isinstance(ranker.stage2, FusionModel):
        assert [type(m) for m in ranker.stage2.members] == [LinearModel, TreeModel]
    assert ranker.stage2.features == VARIANTS[name].stage2
    # the shipped document round-trips and ranks as the fitted one does
    again = model_from_json(json.loads(json.dumps(ranker.to_json())), Location("ranker.json"))
    for d in data[:3]:
        assert first_hit(rank_kiln(d.cset, again, _diff), d.fixes) == 1
    ranks = leave_one_repo_out(data, _diff_of, variant=VARIANTS[name])
    assert set(ranks.values()) == {1}
