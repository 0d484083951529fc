"""Remembered test outcomes (kiln.factory.outcomecache): a rebuild of an unchanged image
reuses its passing tests; --retest, a damaged entry, another archive state or other
kiln code run them again; a failure is never remembered.

The network test builds a real image (bc, Debian 13) with a cache of its own; the
policy tests drive ``_test_remembered`` with the sandbox step replaced (they test what
is remembered, not the sandbox, which the network test and test_sample run for real)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kiln.factory import catalogbuild
from kiln.factory.catalogbuild import ImageJob, VariantOutcome, build_and_test, jobs_for, plan
from kiln.factory.outcomecache import OutcomeCache, key_of_tests, scan_key, source_digest

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def test_keys_change_with_every_part() -> None:
    base = key_of_tests(DIGEST, "amd64", network=True, releases=["r1", "r2"])
    assert base == key_of_tests(DIGEST, "amd64", network=True, releases=["r2", "r1"])
    others = {
        key_of_tests("sha256:" + "cd" * 32, "amd64", network=True, releases=["r1", "r2"]),
        key_of_tests(DIGEST, "arm64", network=True, releases=["r1", "r2"]),
        key_of_tests(DIGEST, "amd64", network=False, releases=["r1", "r2"]),
        key_of_tests(DIGEST, "amd64", network=True, releases=["r1", "r3"]),
    }
    assert base not in others
    assert len(others) == 4
    assert len(source_digest()) == 64


def test_scan_key_follows_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "vuln.db"
    assert scan_key(DIGEST, f"sqlite:///{db}") is None  # no database: nothing to remember
    assert scan_key(DIGEST, "postgresql://kiln@localhost/kiln") is None  # changes unseen
    db.write_bytes(b"one")
    first = scan_key(DIGEST, f"sqlite:///{db}")
    db.write_bytes(b"three")
    assert first is not None
    assert scan_key(DIGEST, f"sqlite:///{db}") not in (None, first)


@pytest.mark.parametrize("damage", [b"", b"{not json", b"[1, 2]", b"\xff\xfe", b" " * (2 << 20)])
def test_a_damaged_entry_is_a_miss(tmp_path: Path, damage: bytes) -> None:
    cache = OutcomeCache(tmp_path)
    cache.put("k", {"tests_passed": 1})
    assert cache.get("k") == {"tests_passed": 1}
    (tmp_path / "outcomes" / "k.json").write_bytes(damage)
    assert cache.get("k") is None
    assert cache.get("absent") is None


def _built() -> Any:
    return SimpleNamespace(image=SimpleNamespace(index_digest=DIGEST))


def _job(**changes: Any) -> ImageJob:
    job = ImageJob("x", "f", "debian-13", "x.yaml", "out", "results", variants=["runtime"])
    return replace(job, **changes)


def test_a_failure_is_not_remembered_and_a_wrong_entry_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    verdict = {"failures": ["tests: hello exited 1"]}

    def fake(built: Any, outcome: VariantOutcome, *, run_tests: bool, arch: str) -> None:
        runs.append(outcome.label)
        outcome.tests_passed, outcome.failures = 2, list(verdict["failures"])
        outcome.tests_failed = len(outcome.failures)

    monkeypatch.setattr(catalogbuild, "_test_variant", fake)
    cache = OutcomeCache(tmp_path)

    def once(job: ImageJob, state: list[str] | None = None) -> VariantOutcome:
        outcome = VariantOutcome("x", "runtime", built=True)
        catalogbuild._test_remembered(_built(), outcome, job, cache, state or ["r1"])
        return outcome

    failed = once(_job())
    assert failed.failures
    assert not list(tmp_path.rglob("*.json"))  # nothing remembered
    assert not once(_job()).tests_cached  # the failure ran again
    verdict["failures"] = []
    passed = once(_job())
    assert (passed.tests_passed, passed.tests_failed, passed.tests_cached) == (2, 0, False)
    again = once(_job())
    assert (again.tests_passed, again.tests_cached) == (2, True)
    assert len(runs) == 3
    assert not once(_job(retest=True)).tests_cached  # --retest
    assert not once(_job(), ["r2"]).tests_cached  # the archive moved
    assert len(runs) == 5
    # an entry with the wrong shape is a miss, and the tests run
    key = key_of_tests(DIGEST, "amd64", network=True, releases=["r2"])
    assert cache.get(key) is not None
    for bad in ({"tests_passed": "2"}, {"tests_passed": True}, {"failures": [1]}):
        cache.put(key, {"tests_passed": 2, "tests_failed": 0, "closure_programs": 1,
                        "failures": [], **bad})  # fmt: skip
        assert not once(_job(), ["r2"]).tests_cached
    # no archive state known: nothing is remembered or reused
    outcome = VariantOutcome("x", "runtime", built=True)
    catalogbuild._test_remembered(_built(), outcome, _job(), cache, None)
    assert not outcome.tests_cached


@pytest.mark.network
@pytest.mark.slow
def test_an_unchanged_image_reuses_its_passing_tests(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_DB", str(tmp_path / "none.db"))
    found = plan(ROOT, None, names=["bc"])
    (job,) = jobs_for(tmp_path / "state", found.images, variants={"bc": ["runtime"]})

    def image(each: ImageJob) -> VariantOutcome:
        outcome = build_and_test(each)
        assert outcome.ok, (outcome.error, [v.failures for v in outcome.variants])
        (variant,) = outcome.variants
        return variant

    first = image(job)
    assert first.tests_passed >= 1
    assert first.closure_programs >= 1
    assert not first.tests_cached
    second = image(job)
    assert second.layout_cache_hit
    assert second.tests_cached
    assert (second.tests_passed, second.closure_programs) == (
        first.tests_passed,
        first.closure_programs,
    )
    assert not image(replace(job, retest=True)).tests_cached
    # a damaged entry: the tests run again, and their outcome is remembered anew
    for entry in (own_cache / "outcomes").glob("*.json"):
        entry.write_bytes(b"\0garbage")
    assert not image(job).tests_cached
    assert image(job).tests_cached
