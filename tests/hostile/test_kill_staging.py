"""Staging directories of builds that died are removed; those of live builds are not.

(issue 13.7: ``kill -9`` left ``.python.tmp-*`` directories of up to 69 MB behind, and
no later build removed them.) The owners here are real processes: one that died by
SIGKILL, one that is still running, and this test process itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kiln.oci.staging import (
    commit_directory,
    discard_staging,
    new_staging_dir,
    remove_abandoned,
)

_HOLD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kiln.oci.staging import new_staging_dir
    staging = new_staging_dir(Path(sys.argv[1]))
    blobs = staging / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (blobs / ".partial-0123").write_bytes(b"x" * 4096)
    print(staging, flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()  # hold the staging directory until told to go
    """
)


def _owner(final: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(final), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    staging = Path(process.stdout.readline().strip())
    assert staging.is_dir()
    return process, staging


def _entries(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_the_staging_of_a_killed_build_is_removed_by_the_next(tmp_path: Path) -> None:
    final = tmp_path / "out" / "python"
    process, stale = _owner(final, "die")
    assert process.wait() == -signal.SIGKILL
    assert stale.is_dir()
    assert stale.with_name(stale.name + ".lock").is_file()

    mine = new_staging_dir(final)
    assert not stale.exists()
    assert _entries(final.parent) == sorted([mine.name, mine.name + ".lock"])
    commit_directory(mine, final)
    assert _entries(final.parent) == ["python"]


def test_a_running_build_keeps_its_staging_until_it_dies(tmp_path: Path) -> None:
    final = tmp_path / "out" / "python"
    process, live = _owner(final, "hold")
    try:
        mine = new_staging_dir(final)  # another build of the same image, at the same time
        assert live.is_dir()
        assert (live / "blobs/sha256/.partial-0123").is_file()
        assert remove_abandoned(final.parent) == []
        discard_staging(mine)
    finally:
        process.kill()
        process.wait()
    assert remove_abandoned(final.parent) == [live]
    assert _entries(final.parent) == []


def test_this_process_does_not_remove_its_own_live_staging(tmp_path: Path) -> None:
    final = tmp_path / "python"
    first = new_staging_dir(final)
    second = new_staging_dir(final)
    assert first.is_dir()
    assert second.is_dir()
    assert remove_abandoned(tmp_path) == []
    commit_directory(second, final)
    discard_staging(first)
    assert _entries(tmp_path) == ["python"]


def test_commit_over_an_existing_directory_leaves_nothing_behind(tmp_path: Path) -> None:
    final = tmp_path / "python"
    for content in (b"one", b"two"):
        staging = new_staging_dir(final)
        (staging / "index.json").write_bytes(content)
        commit_directory(staging, final)
    assert (final / "index.json").read_bytes() == b"two"
    assert _entries(tmp_path) == ["python"]


def test_staging_left_by_an_older_kiln_without_a_lock_is_removed(tmp_path: Path) -> None:
    legacy = tmp_path / ".python-dev.tmp-0123456789ab"
    (legacy / "blobs/sha256").mkdir(parents=True)
    (legacy / "blobs/sha256/.partial-abc").write_bytes(b"partial")
    orphan_lock = tmp_path / ".python.tmp-abcdefabcdef.lock"
    orphan_lock.write_text("12345\n")  # its directory is gone and nobody holds it
    kept = [
        tmp_path / "python",
        tmp_path / ".python.tmp-notkilnhex",  # not a name kiln makes
        tmp_path / "notes.tmp-0123456789ab",  # not hidden
    ]
    for path in kept:
        path.mkdir()
    # a regular file with a staging name is not a staging directory
    (tmp_path / ".python.oci.tar.tmp-0123456789ab").write_bytes(b"tar")

    assert sorted(remove_abandoned(tmp_path)) == sorted([legacy, orphan_lock])
    assert _entries(tmp_path) == sorted(
        [*(p.name for p in kept), ".python.oci.tar.tmp-0123456789ab"]
    )


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename"])
def test_a_crash_while_removing_the_previous_content_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    """The previous layout leaves through the (locked) staging name, never a free one."""
    import kiln.oci.staging as staging_module

    final = tmp_path / "python"
    final.mkdir()
    (final / "old").write_bytes(b"previous")
    staging = new_staging_dir(final)
    (staging / "new").write_bytes(b"next")
    if not exchange:
        monkeypatch.setattr(staging_module, "_rename_exchange", lambda a, b: False)

    def crash(path: Path, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies while removing the previous content

    monkeypatch.setattr(shutil, "rmtree", crash)  # the shutil that staging calls
    with pytest.raises(KeyboardInterrupt):
        commit_directory(staging, final)
    monkeypatch.undo()
    assert _entries(final) == ["new"]
    assert remove_abandoned(tmp_path)  # what is left is abandoned, and removed
    assert _entries(tmp_path) == ["python"]


def test_killed_in_every_window_of_new_staging_dir(tmp_path: Path) -> None:
    """A lock file without its directory (killed between the two) is an orphan."""
    final = tmp_path / "out" / "python"
    final.parent.mkdir()
    lock = final.parent / ".python.tmp-00112233aabb.lock"
    lock.write_text(f"{os.getpid()}\n")
    staging = new_staging_dir(final)
    assert not lock.exists()
    discard_staging(staging)
    assert _entries(final.parent) == []


def test_a_filesystem_without_locks_builds_and_keeps_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock may fail with ENOLCK (some network filesystems): build on, remove nothing."""
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # the fcntl that staging calls
    final = tmp_path / "python"
    staging = new_staging_dir(final)
    assert remove_abandoned(tmp_path) == []  # cannot tell it is abandoned: kept
    commit_directory(staging, final)
    assert _entries(tmp_path) == ["python"]


def test_staging_of_another_user_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock file this user may not open (another user's build in a shared out/)."""
    theirs = tmp_path / ".python.tmp-0123456789ab"
    theirs.mkdir()
    lock = tmp_path / ".python.tmp-0123456789ab.lock"
    lock.write_text("4242\n")
    real_open = os.open

    def denied(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(str(path)) == lock:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", denied)  # the os that staging calls
    assert remove_abandoned(tmp_path) == []
    assert theirs.is_dir()
