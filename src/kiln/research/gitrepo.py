"""Read-only access to an upstream git repository, bounded in time, bytes and count.

``git`` runs as a subprocess with ``--git-dir`` and an argument list (never a shell),
with a timeout and a cap on the bytes read from its output. A bare clone whose folder
lacks ``refs/`` (read-only copies such as fixbench's: git refuses them as "not a git
repository") is opened through a scratch git dir that borrows its objects through
``objects/info/alternates`` and copies its ``packed-refs``; nothing is written into the
original. A URL is cloned bare into a scratch folder whose size is watched while git
runs: past ``max_bytes`` the clone is stopped and refused with the limit named.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem, InputError, Location, RemoteContentError

GIT_TIMEOUT = 60.0  # seconds for one git command
MAX_OUTPUT = 256 << 20  # bytes read from one git command
MAX_REPO_BYTES = 4 << 30  # an opened or cloned repository's objects
MAX_COMMITS = 20_000  # commits read for one candidate window
SHA = re.compile(r"^[0-9a-f]{40}$")
_URL = re.compile(r"^(?:https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")


class GitError(EnvironmentProblem):
    """git failed, timed out or produced more than kiln reads (exit 3)."""


@dataclass(frozen=True)
class Commit:
    """One non-merge commit as the finder sees it (files with their numstat counts)."""

    sha: str
    time: int  # committer time, Unix seconds
    author_time: int
    message: str
    files: tuple[str, ...]
    added: int
    deleted: int
    binary_files: int

    @property
    def subject(self) -> str:
        """The message's first line."""
        return self.message.split("\n", 1)[0]


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class GitRepo:
    """A repository kiln reads with ``git --git-dir``; use ``open_repo`` to make one."""

    def __init__(self, git_dir: Path, *, name: str) -> None:
        self.git_dir = git_dir
        self.name = name

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = GIT_TIMEOUT,
        max_bytes: int = MAX_OUTPUT,
        check: bool = True,
    ) -> bytes:
        """git's standard output for ``args``; GitError on failure, timeout or excess."""
        command = ["git", f"--git-dir={self.git_dir}", *args]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/nonexistent"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env
                )
            except OSError as exc:
                raise GitError(f"cannot run git: {exc.strerror or exc}") from exc
            if proc.stdout is None:  # pragma: no cover (stdout=PIPE always sets it)
                raise GitError("git's output pipe is missing")
            deadline = time.monotonic() + timeout
            chunks: list[bytes] = []
            size = 0
            try:
                while chunk := proc.stdout.read(1 << 16):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        raise GitError(
                            f"git {args[0]} in {self.name} wrote more than {max_bytes} bytes",
                            hint="narrow the window or raise the limit",
                        )
                    if time.monotonic() > deadline:
                        raise GitError(f"git {args[0]} in {self.name} took longer than {timeout} s")
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise GitError(
                    f"git {args[0]} in {self.name} took longer than {timeout} s"
                ) from exc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            if check and proc.returncode != 0:
                err.seek(0)
                lines = err.read(2000).decode("utf-8", "replace").strip().splitlines()
                last = lines[-1] if lines else f"exit status {proc.returncode}"
                raise GitError(f"git {args[0]} in {self.name} failed: {last}")
        return b"".join(chunks)

    def resolve(self, rev: str) -> str | None:
        """The full sha of commit ``rev``, or None when the repository lacks it."""
        if not re.fullmatch(r"[0-9A-Za-z._/+-]{1,200}", rev) or rev.startswith("-"):
            return None
        out = self.run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], check=False)
        text = out.decode().strip()
        return text if SHA.match(text) else None

    def tags(self) -> dict[str, tuple[str, int]]:
        """Tag name → (commit sha, commit time)."""
        out = self.run(
            [
                "for-each-ref",
                "refs/tags",
                "--format=%(refname:short)%09%(*objectname)%09%(objectname)%09"
                "%(*committerdate:unix)%09%(committerdate:unix)",
            ]
        )
        tags: dict[str, tuple[str, int]] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            parts = line.split("\t")
            if len(parts) != 5:
                continue
            name, peeled, obj, peeled_time, obj_time = parts
            sha = peeled or obj
            when = peeled_time or obj_time
            if SHA.match(sha) and when.isdigit():
                tags[name] = (sha, int(when))
        return tags

    def log(self, revs: Sequence[str], *, max_count: int = MAX_COMMITS) -> list[Commit]:
        """Non-merge commits of ``revs`` (git log syntax) with their files, newest first."""
        out = self.run(
            [
                "log",
                "--no-merges",
                "--no-renames",
                f"--max-count={max_count}",
                "--format=%x1e%H%x1f%ct%x1f%at%x1f%B%x1f",
                "--numstat",
                *revs,
                "--",
            ]
        )
        return parse_log(out)

    def count(self, revs: Sequence[str]) -> int:
        """How many non-merge commits ``revs`` selects (no diffs computed)."""
        out = self.run(["rev-list", "--count", "--no-merges", *revs, "--"])
        text = out.decode().strip()
        return int(text) if text.isdigit() else 0

    def show(self, sha: str, *, max_bytes: int = 4 << 20, context: int = 3) -> str:
        """The unified diff of one commit (first parent), bounded to ``max_bytes``."""
        if not SHA.match(sha):
            raise InputError(f"{sha!r} is not a full commit id")
        out = self.run(
            ["show", "--format=", "--no-color", "--no-ext-diff", f"-U{context}", sha],
            max_bytes=max_bytes,
        )
        return out.decode("utf-8", "replace")

    def message(self, sha: str) -> str:
        """The full message of one commit."""
        return self.run(["show", "-s", "--format=%B", sha]).decode("utf-8", "replace")


def parse_log(out: bytes) -> list[Commit]:
    """Commits from ``git log --format=%x1e%H%x1f%ct%x1f%at%x1f%B%x1f --numstat`` output."""
    commits: list[Commit] = []
    for record in out.decode("utf-8", "replace").split("\x1e")[1:]:
        parts = record.split("\x1f")
        if len(parts) < 5 or not SHA.match(parts[0]):
            continue
        files: list[str] = []
        added = deleted = binary = 0
        for line in parts[4].splitlines():
            cols = line.split("\t", 2)
            if len(cols) != 3:
                continue
            if cols[0] == "-":
                binary += 1
            else:
                added += int(cols[0]) if cols[0].isdigit() else 0
                deleted += int(cols[1]) if cols[1].isdigit() else 0
            files.append(cols[2])
        commits.append(
            Commit(
                sha=parts[0],
                time=int(parts[1]) if parts[1].isdigit() else 0,
                author_time=int(parts[2]) if parts[2].isdigit() else 0,
                message=parts[3].strip(),
                files=tuple(files),
                added=added,
                deleted=deleted,
                binary_files=binary,
            )
        )
    return commits


def _scratch_for(source: Path, scratch: Path) -> Path:
    """A git dir in ``scratch`` that reads ``source``'s objects and refs (no refs/ there)."""
    (scratch / "refs" / "heads").mkdir(parents=True)
    (scratch / "refs" / "tags").mkdir()
    (scratch / "objects" / "info").mkdir(parents=True)
    (scratch / "objects" / "info" / "alternates").write_text(f"{source / 'objects'}\n")
    for name in ("HEAD", "packed-refs", "shallow"):
        if (source / name).is_file():
            shutil.copyfile(source / name, scratch / name)
    if not (scratch / "HEAD").exists():
        (scratch / "HEAD").write_text("ref: refs/heads/main\n")
    (scratch / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
    return scratch


def _clone(url: str, target: Path, *, max_bytes: int, timeout: float) -> None:
    """``git clone --bare`` of ``url`` into ``target``, stopped past the size or time limit."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    command = ["git", "clone", "--bare", "--quiet", "--no-hardlinks", "--", url, str(target)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + timeout
        problem: str | None = None
        while proc.poll() is None:
            time.sleep(0.2)
            if target.exists() and _dir_bytes(target) > max_bytes:
                problem = f"is larger than the limit of {max_bytes} bytes"
            elif time.monotonic() > deadline:
                problem = f"took longer than the limit of {timeout} s to clone"
            if problem:
                proc.kill()
                proc.wait()
                raise RemoteContentError(
                    f"repository {url} {problem}",
                    hint="pass a local clone with --repo PATH, or raise the limit",
                )
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read(4000).decode("utf-8", "replace").strip().splitlines()
            raise GitError(
                f"cannot clone {url}: {lines[-1] if lines else f'git exited {proc.returncode}'}"
            )
    if _dir_bytes(target) > max_bytes:
        raise RemoteContentError(f"repository {url} is larger than the limit of {max_bytes} bytes")


@contextmanager
def open_repo(
    where: str | Path,
    *,
    max_bytes: int = MAX_REPO_BYTES,
    clone_timeout: float = 600.0,
) -> Iterator[GitRepo]:
    """A ``GitRepo`` for a local clone (bare or not) or a URL cloned bare, size-bounded."""
    text = str(where)
    with tempfile.TemporaryDirectory(prefix="kiln-research-") as tmp:
        scratch = Path(tmp) / "repo.git"
        if _URL.match(text):
            _clone(text, scratch, max_bytes=max_bytes, timeout=clone_timeout)
            yield GitRepo(scratch, name=text)
            return
        path = Path(text)
        if "\x00" in text or not path.exists():
            raise InputError("no repository at this path", location=Location(text))
        git_dir = path / ".git" if (path / ".git").is_dir() else path
        if not (git_dir / "objects").is_dir():
            raise InputError(
                "is not a git repository (no objects/ folder)", location=Location(text)
            )
        size = _dir_bytes(git_dir / "objects")
        if size > max_bytes:
            raise InputError(
                f"repository is {size} bytes, larger than the limit of {max_bytes}",
                location=Location(text),
                hint="raise the limit (KILN_RESEARCH_MAX_REPO_BYTES) if this is expected",
            )
        if not (git_dir / "refs").is_dir():
            git_dir = _scratch_for(git_dir.resolve(), scratch)
        yield GitRepo(git_dir, name=text)
