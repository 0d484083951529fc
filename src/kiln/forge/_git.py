"""git plumbing for the forges: objects, trees and refs, never the working tree or index.

Every command runs with ``LC_ALL=C``, no prompt, and (for tree building) its own
temporary ``GIT_INDEX_FILE``, so the user's checkout, index and hooks are never touched.
Refs move only in ``git update-ref --stdin`` transactions with the expected old values,
so two writers racing lose cleanly (one transaction fails, nothing half-moves).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem, InputError
from kiln.text import plain_line

ZERO_OID = "0" * 40
_TIMEOUT = 120.0


class RefRaceError(Exception):
    """A ref moved between reading it and updating it (another writer won): retry."""


@dataclass(frozen=True)
class Identity:
    """Who authors and commits kiln's changes."""

    name: str = "kiln"
    email: str = "kiln@localhost"

    @classmethod
    def parse(cls, text: str, *, where: str) -> Identity:
        """``Name <email>`` as an identity, or ``InputError`` naming ``where``."""
        name, sep, rest = text.partition("<")
        email = rest.removesuffix(">").strip()
        if not sep or not rest.endswith(">") or not name.strip() or not email or "<" in email:
            raise InputError(f"{where}={text!r} is not 'Name <email>'")
        if any(ch in text for ch in "\n\r\0"):
            raise InputError(f"{where} holds a control character")
        return cls(name.strip(), email)


class Git:
    """One git repository, spoken to through plumbing commands."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.last_status = 0
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.run("rev-parse", "--git-dir", what="find the repository")

    def run(
        self,
        *args: str,
        what: str,
        data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        ok: Sequence[int] = (0,),
    ) -> str:
        """The stdout of ``git args`` (text), or an error saying what kiln tried to do."""
        return self.run_bytes(*args, what=what, data=data, env=env, ok=ok).decode(
            "utf-8", "replace"
        )

    def run_bytes(
        self,
        *args: str,
        what: str,
        data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        ok: Sequence[int] = (0,),
    ) -> bytes:
        """``run`` returning raw bytes (blob contents)."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.repo), *args],
                input=data if data is not None else b"",
                capture_output=True,
                check=False,
                timeout=_TIMEOUT,
                env={**self._env, **(env or {})},
            )
        except FileNotFoundError as exc:
            raise EnvironmentProblem("git is not installed", hint="apt-get install git") from exc
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentProblem(f"git {args[0]} took longer than {_TIMEOUT:.0f} s") from exc
        if done.returncode not in ok:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            # git's own verdict ("fatal: ...", "error: ..."), not its closing advice
            verdicts = [line for line in lines if line.startswith(("fatal:", "error:"))]
            reason = plain_line((verdicts or lines or [f"exit status {done.returncode}"])[0])
            raise InputError(f"{self.repo}: could not {what}: {reason}")
        self.last_status = done.returncode
        return done.stdout

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` names, or None when it does not exist."""
        out = self.run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=f"read {ref}", ok=(0, 1)
        )
        return out.strip() or None

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """Whether ``ancestor`` is reachable from ``commit``."""
        self.run("merge-base", "--is-ancestor", ancestor, commit, what="compare commits", ok=(0, 1))
        return self.last_status == 0

    def tree_of(self, commit: str) -> str:
        """The tree id of ``commit``."""
        return self.run(
            "rev-parse", f"{commit}^{{tree}}", what=f"read the tree of {commit}"
        ).strip()

    def hash_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; its id."""
        return self.run("hash-object", "-w", "--stdin", data=data, what="store a file").strip()

    def build_tree(self, base: str | None, files: Mapping[str, bytes | None]) -> str:
        """The tree of commit ``base`` (or empty) with ``files`` written (None: removed).

        Built in a temporary index file (in the temporary directory, so a killed
        process leaves nothing in the repository), never the user's index.
        """
        if base is not None:
            self._check_file_dir_conflicts(base, files)
        with tempfile.TemporaryDirectory(prefix="kiln-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is not None:
                self.run("read-tree", base, env=env, what=f"read the tree of {base}")
            else:
                self.run("read-tree", "--empty", env=env, what="start an empty tree")
            lines = []
            for path, data in sorted(files.items()):
                if data is None:
                    lines.append(f"0 {ZERO_OID}\t{path}")
                else:
                    lines.append(f"100644 {self.hash_blob(data)}\t{path}")
            if lines:
                self.run(
                    "update-index",
                    "--index-info",
                    data=("\n".join(lines) + "\n").encode(),
                    env=env,
                    what="stage the change's files",
                )
            return self.run("write-tree", env=env, what="write the change's tree").strip()

    def _check_file_dir_conflicts(self, base: str, files: Mapping[str, bytes | None]) -> None:
        """Refuse a file where ``base`` has a directory, or under one of its files: git's
        index would silently drop the directory's files or the file."""
        listing = self.run("ls-tree", "-r", "-z", "--name-only", base, what=f"list {base}")
        existing = set(filter(None, listing.split("\0")))
        directories = {name.rsplit("/", 1)[0] for name in existing if "/" in name}
        directories |= {d.rsplit("/", n)[0] for d in directories for n in range(d.count("/") + 1)}
        for path, data in files.items():
            if data is None:
                continue
            if path in directories:
                raise InputError(f"{self.repo}: {path!r} is a directory on the base branch")
            parts = path.split("/")
            for end in range(1, len(parts)):
                parent = "/".join(parts[:end])
                if parent in existing:
                    raise InputError(f"{self.repo}: {path!r} would be under the file {parent!r}")

    def commit_tree(
        self,
        tree: str,
        parents: Iterable[str],
        message: str,
        *,
        identity: Identity,
        when: int,
    ) -> str:
        """A commit of ``tree`` with ``parents``, authored and committed at ``when``."""
        date = f"@{when} +0000"  # "@": seconds since 1970 even when few digits
        env = {
            "GIT_AUTHOR_NAME": identity.name,
            "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": identity.name,
            "GIT_COMMITTER_EMAIL": identity.email,
            "GIT_COMMITTER_DATE": date,
        }
        # never signed, whatever an older git or the user's config says: kiln's commits
        # must be the same from one machine to the next
        args = ["commit-tree", "--no-gpg-sign", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.run(*args, data=message.encode(), env=env, what="commit the change").strip()

    def update_refs(self, updates: Mapping[str, tuple[str, str | None]]) -> None:
        """Move every ref to its new value in one transaction, if each still has its old.

        ``updates`` maps a ref to ``(new, old)``; ``old`` None means the ref must not
        exist yet. Raises ``RefRaceError`` when another writer moved one of them.
        """
        lines = ["start"]
        for ref, (new, old) in sorted(updates.items()):
            lines.append(f"update {ref} {new} {old or ZERO_OID}")
        lines += ["prepare", "commit"]
        try:
            self.run(
                "update-ref", "--stdin", data=("\n".join(lines) + "\n").encode(), what="move refs"
            )
        except InputError as exc:
            raise RefRaceError(str(exc)) from exc

    def read_blobs(self, tree: str, *, max_bytes: int) -> dict[str, bytes]:
        """Every blob at the top of ``tree`` by name; one larger than ``max_bytes`` is an
        ``InputError`` before it is read."""
        listing = self.run("ls-tree", "-z", "-l", tree, what=f"list {tree}")
        entries: list[tuple[str, str]] = []
        for item in filter(None, listing.split("\0")):
            meta, name = item.split("\t", 1)
            _, kind, oid, size = meta.split()
            if kind != "blob":
                continue
            if int(size) > max_bytes:
                raise InputError(f"{self.repo}: {tree}:{name} is larger than {max_bytes} bytes")
            entries.append((name, oid))
        if not entries:
            return {}
        out = self.run_bytes(
            "cat-file",
            "--batch",
            data="".join(f"{oid}\n" for _, oid in entries).encode(),
            what="read the pull request records",
        )
        blobs: dict[str, bytes] = {}
        offset = 0
        for name, _oid in entries:
            header_end = out.index(b"\n", offset)
            length = int(out[offset:header_end].split()[2])
            start = header_end + 1
            blobs[name] = out[start : start + length]
            offset = start + length + 1
        return blobs
