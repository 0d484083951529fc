"""Catalog builds keep their temporary files in memory while they run, and give the
process's temporary directory back afterwards: a test process that built an image
in-process kept tempfile's directory in a root-only scratch, and PostgreSQL's initdb,
run as another user by a later test, could not reach its data directory there."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from kiln.factory import catalogbuild


def test_the_scratch_is_set_while_builds_run_and_given_back_after_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_SCRATCH", str(tmp_path))
    monkeypatch.setattr(catalogbuild, "_SCRATCH", catalogbuild._Scratch())
    monkeypatch.setattr(tempfile, "tempdir", None)
    before = tempfile.gettempdir()
    inside: list[str] = []
    first_in, second_done = threading.Event(), threading.Event()

    def second() -> None:
        first_in.wait()
        with catalogbuild._memory_scratch_in_use():
            inside.append(tempfile.gettempdir())
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with catalogbuild._memory_scratch_in_use():
        inside.append(tempfile.gettempdir())
        first_in.set()
        second_done.wait(10)
        assert tempfile.gettempdir() == inside[0]  # the other build ending kept it
    thread.join()
    assert len(set(inside)) == 1
    assert Path(inside[0]).parent == tmp_path
    assert tempfile.gettempdir() == before  # given back after the last build
