"""Stage 2's learners (issue #17, third round): gradient-boosted trees and the fusion
of the linear model with them, trained by ``kiln.research.train`` and shipped in the
ranker document. Real feature extraction and real scikit-learn fits on the synthetic
data of ``test_features_nested`` (one diff feature alone tells the fix apart)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.errors import Location
from kiln.research.finder import rank_kiln
from kiln.research.rank import FusionModel, LinearModel, TreeModel, load_model, model_from_json
from kiln.research.train import VARIANTS, first_hit, fit_ranker, leave_one_repo_out
from research.conftest import Upstream, git, record_json
from research.test_features_nested import _data, _diff, _diff_of

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fixcommits.py"

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


def test_bench_cross_validates_the_shipped_fusion_model(upstream: Upstream, tmp_path: Path) -> None:
    # bench --cv retrains the shipped model's own kind (a fusion: linear + trees) without
    # each CVE's repository; two copies of the demo history are the two repositories
    assert isinstance(load_model().stage2, FusionModel)
    data = tmp_path / "data"
    (data / "repos").mkdir(parents=True)
    lines: list[str] = []
    for name in ("upstream", "other"):
        git(
            tmp_path,
            "clone",
            "-q",
            "--bare",
            str(upstream.work),
            str(data / "repos" / f"{name}.git"),
        )
        record = record_json(
            cve=f"CVE-2023-{len(lines) + 1:04d}", repo=f"demo/{name}", fix_commits=[upstream.fix]
        )
        lines.append(json.dumps(record))
    (data / "cves.jsonl").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(data), "--json", "--cv"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result["kiln_cv"]["learner"] == "fusion"
    assert result["kiln_cv"]["cves"] == 2.0
    assert result["kiln_cv"]["in_candidates"] == 1.0
    assert set(result["kiln_cv"]["by_repo"]) == {"demo/upstream", "demo/other"}
