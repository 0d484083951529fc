"""SOURCE_DATE_EPOCH is read one way everywhere; a bad value is an input error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.epoch import MAX_EPOCH, source_date_epoch
from kiln.errors import InputError


def test_unset_and_empty_mean_none() -> None:
    assert source_date_epoch({}) is None
    assert source_date_epoch({"SOURCE_DATE_EPOCH": ""}) is None


def test_a_number_of_seconds() -> None:
    assert source_date_epoch({"SOURCE_DATE_EPOCH": "1767225600"}) == 1767225600
    assert source_date_epoch({"SOURCE_DATE_EPOCH": "0"}) == 0


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", " 12", "١٢٣", str(MAX_EPOCH + 1), "1e9"])
def test_anything_else_is_an_input_error_naming_the_variable(text: str) -> None:
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch({"SOURCE_DATE_EPOCH": text})


def test_kiln_repo_publish_exits_2_on_a_bad_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ran int(epoch): a ValueError traceback and exit 1, the policy-failure code."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
    code = main(["repo", "publish", str(tmp_path / "repo"), "--gnupghome", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "SOURCE_DATE_EPOCH='yesterday' is not a number of seconds" in err
