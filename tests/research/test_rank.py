"""The shipped ranker loads; a hostile ranker file is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.research.features import FEATURE_NAMES, Features
from kiln.research.rank import baseline_score, load_model, prospector_rules
from kiln.research.train import VARIANTS


def test_shipped_model_is_two_stage_and_names_known_features() -> None:
    ranker = load_model()
    # the feature set tools/train_ranker.py chose by cross-validation, named in meta
    variant = VARIANTS[ranker.meta["variant"]]
    assert ranker.stage1.features == variant.stage1
    assert set(variant.stage1) <= set(FEATURE_NAMES)
    assert ranker.stage2 is not None
    assert ranker.stage2.features == variant.stage2
    assert ranker.depth > 0
    assert "loro" in ranker.meta  # its cross-validated numbers travel with it


def test_prospector_weights() -> None:
    f = Features({"cve_in_message": 1.0, "xref_issue": 1.0, "sec_keywords": 2.0})
    assert prospector_rules(f, "fix (#12)") == {
        "VULN_ID_IN_MESSAGE": 64,
        "XREF_GH": 32,
        "SEC_KEYWORDS_IN_MESSAGE": 4,
        "GITHUB_ISSUE_IN_MESSAGE": 2,
    }
    assert baseline_score(Features({}), "nothing") == 0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a kiln ranker"),
        (json.dumps({"format": "kiln-ranker/1", "stage1": 3}).encode(), "must be a JSON object"),
        (
            json.dumps(
                {
                    "format": "kiln-ranker/1",
                    "stage1": {"features": ["rm -rf"], "mean": [0], "scale": [1], "coef": [1]},
                }
            ).encode(),
            "unknown features",
        ),
        (
            json.dumps(
                {
                    "format": "kiln-ranker/1",
                    "stage1": {"features": ["fix_word"], "mean": [0], "scale": [0], "coef": [1]},
                }
            ).encode(),
            "'scale' must be positive",
        ),
        (
            b'{"format": "kiln-ranker/1", "stage1": {"features": ["fix_word"], "mean": [0],'
            b' "scale": [1], "coef": [NaN]}}',
            "not acceptable JSON",
        ),
    ],
)
def test_hostile_ranker_files_are_refused(tmp_path: Path, doc: bytes, message: str) -> None:
    path = tmp_path / "ranker.json"
    path.write_bytes(doc)
    with pytest.raises(InputError, match=message):
        load_model(path)


def test_a_ranker_file_past_the_size_limit_is_refused_and_the_shipped_one_fits(
    tmp_path: Path,
) -> None:
    from importlib import resources

    from kiln.research.rank import MAX_MODEL_BYTES

    shipped = resources.files("kiln.research").joinpath("ranker.json").read_bytes()
    assert len(shipped) <= MAX_MODEL_BYTES  # the bagged trees (1.3 MB) load
    path = tmp_path / "ranker.json"
    path.write_bytes(b" " * MAX_MODEL_BYTES + shipped)  # valid JSON, too long to read
    with pytest.raises(InputError, match=f"larger than the limit of {MAX_MODEL_BYTES}"):
        load_model(path)
