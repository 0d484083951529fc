"""Choosing the ranker's feature set by nested cross-validation (issue #17).

Real components: the real feature extraction and the real scikit-learn fits of
``kiln.research.train``; the data is synthetic so that exactly one diff feature of the
``+diff`` variant (CWE-typical code in the added lines) tells the fix apart.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.errors import InputError, Location
from kiln.research.features import Advisory, extract
from kiln.research.finder import CandidateSet
from kiln.research.gitrepo import Commit
from kiln.research.record import record_from_json
from kiln.research.train import (
    VARIANTS,
    Labelled,
    choose_variant,
    fit_ranker,
    nested_cv,
    parse_variants,
    selection_score,
)
from research.conftest import record_json

pytest.importorskip("sklearn")

FIX = "f" * 40
BOTH = [VARIANTS["base"], VARIANTS["+diff"]]


def _commit(sha: str) -> Commit:
    return Commit(
        sha=sha,
        time=1_700_000_000,
        author_time=1_700_000_000,
        message="update the code",
        files=("src/a.c",),
        added=1,
        deleted=1,
        binary_files=0,
    )


def _diff(sha: str) -> str:
    # only the fix adds code a CWE-787 fix typically adds (a length bound), and nothing
    # else separates it: same message, file, time; no `if` (adds_check), no words or
    # identifiers shared with the description
    line = "+    n = bounded(len, max);" if sha == FIX else '+    puts("hi");'
    return f"diff --git a/src/a.c b/src/a.c\n--- a/src/a.c\n+++ b/src/a.c\n@@ -1 +1 @@\n{line}\n"


def _data(repos: int = 4, per_repo: int = 3) -> list[Labelled]:
    out = []
    for r in range(repos):
        for i in range(per_repo):
            cve = f"CVE-2023-{r}{i:03d}"
            rec = record_from_json(
                record_json(cve=cve, description="Heap corruption in demo's header handling."),
                Location(cve),
            ).record
            adv = Advisory.of(rec)
            commits = [_commit(f"{k}" * 40) for k in range(7)] + [_commit(FIX)]
            feats = extract(adv, commits, [False] * len(commits))
            cset = CandidateSet(adv, commits, feats, [("window",)] * len(commits))
            out.append(Labelled(cve, f"demo/r{r}", False, frozenset({FIX}), cset))
    return out


def _diff_of(_repo: str, sha: str) -> str:
    return _diff(sha)


def test_the_diff_feature_is_what_separates_the_fix() -> None:
    data = _data()
    base = fit_ranker(data, _diff_of, variant=VARIANTS["base"])
    plus = fit_ranker(data, _diff_of, variant=VARIANTS["+diff"])
    assert base.stage2 is not None
    assert plus.stage2 is not None
    assert "cwe_code_added" not in base.stage2.features
    assert "cwe_code_added" in plus.stage2.features
    assert plus.meta["variant"] == "+diff"
    choice = choose_variant(data, _diff_of, BOTH)
    assert choice.recall["+diff"]["top1"] == 1.0
    assert choice.recall["base"]["top1"] == 0.0  # ties go to the lower sha: the fix is last
    assert choice.picked == "+diff"


def test_nested_picks_inside_each_training_fold_only() -> None:
    data = _data()
    nested = nested_cv(data, _diff_of, BOTH)
    assert set(nested.choices) == {f"demo/r{r}" for r in range(4)}
    assert all(c.picked == "+diff" for c in nested.choices.values())
    assert all(rank == 1 for rank in nested.ranks.values())
    assert nested.full.picked == "+diff"
    # each fold's choice is the inner leave-one-repo-out on the other repositories alone
    held = "demo/r2"
    inner = choose_variant([d for d in data if d.repo != held], _diff_of, BOTH)
    assert nested.choices[held].recall == inner.recall
    # the outer repository's answers never reach its fold's choice: give its CVEs another
    # fix commit and the choice (and the inner recall it was made on) stays the same,
    # while the outer ranks show the procedure now misses them
    lied = [
        dataclasses.replace(d, fixes=frozenset({"0" * 40})) if d.repo == held else d for d in data
    ]
    again = nested_cv(lied, _diff_of, BOTH)
    assert again.choices[held].picked == nested.choices[held].picked
    assert again.choices[held].recall == nested.choices[held].recall
    assert all(again.ranks[d.cve] != 1 for d in data if d.repo == held)


def test_selection_score_sums_top_k() -> None:
    assert selection_score({"top1": 0.5, "top5": 0.25, "top10": 0.125}) == 0.875


@pytest.mark.parametrize(("text", "named"), [("base,bogus", "bogus"), (" , ", "(none given)")])
def test_unknown_variants_are_an_input_error(text: str, named: str) -> None:
    with pytest.raises(InputError, match=re.escape(named)) as caught:
        parse_variants(text)
    assert caught.value.exit_code == 2


def test_variants_keep_their_order() -> None:
    assert [v.name for v in parse_variants("+diff, base")] == ["+diff", "base"]


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["bench/fixcommits.py", "tools/train_ranker.py"])
def test_scripts_refuse_unknown_variants_before_reading_data(script: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / script), "--data", str(tmp_path), "--variants", "base,nope"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown nope" in out.stderr
    assert "Traceback" not in out.stderr
