"""Built backport packages shared between images: one build per fix, not one per image.

Every catalog image whose ``-dev`` variant carries liblz4-1 wants the same lz4 backport;
without sharing, each image's reconcile stages, builds and tests the same (source, base
version, patch) again (about 80 s each on two cores). A ``PackageBuildCache`` keys the
sandboxed build by (source, base version, sha256 of the patch set, recipe): the first
backport builds into ``<root>/<key>.partial/`` and renames it to ``<root>/<key>/`` when
the build and its tests passed; a later one, in this process or another worker on the
same machine, takes the packages and the recipe files from there. An ``flock`` per key
(``<root>/<key>.lock``) makes a second worker wait for the first one's build and reuse
it instead of building the same thing at the same time.

An entry keeps the recipe files as they were staged for the build, so every pull
request that uses it carries the same recipe bytes (a build staged yesterday is not
re-rendered with today's ``Last-Update``).

Entries are pruned by last use (``prune``: a load touches the entry's ``used`` stamp):
an entry no reconcile took for ``max_age`` goes, with the ``.partial`` directory of a
build no worker holds any more (a killed worker's leftovers). Lock files (empty) stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kiln.errors import InputError
from kiln.fileio import atomic_write
from kiln.jsonlimits import read_json_file
from kiln.recipes.build import BUILD_ENVIRONMENT, BuildOutput

FORMAT = 1
_KEY = re.compile(r"^[0-9a-f]{64}$")
_MAX_RECORD = 8 << 20


@dataclass(frozen=True)
class StagedFiles:
    """The recipe a build used, as the pull request carries it."""

    recipe: Path  # the staged recipe file the build reads
    files: Mapping[str, bytes]  # path relative to the catalog root -> content
    patches: Mapping[str, bytes]  # patch file name -> content, as written


@dataclass(frozen=True)
class CachedBuild:
    """A finished build: its output (paths inside the entry) and its recipe files."""

    key: str
    output: BuildOutput
    files: Mapping[str, bytes]
    patches: Mapping[str, bytes]
    reused: bool  # True: another backport built it; this one only took it


def build_key(
    source: str,
    version: str,
    patches: Sequence[tuple[str, bytes, Sequence[tuple[str, str]]]],
    *,
    cves: Sequence[str],
    release: str,
    arch: str,
    recipe: bytes | None,
    tests: Sequence[str],
) -> str:
    """The sha256 naming one build: source, base version, the patch set (name, sha256 of
    the text, DEP-3 fields), the CVEs, the release and arch, the catalog's existing recipe
    (its bytes, or none), the recipe tests and what kiln's sandbox gives a build
    (``BUILD_ENVIRONMENT``). The day it was staged is not part of it."""
    document = {
        "format": FORMAT,
        "environment": BUILD_ENVIRONMENT,
        "source": source,
        "version": version,
        "release": release,
        "arch": arch,
        "cves": sorted(cves),
        "patches": [
            [name, hashlib.sha256(text).hexdigest(), [list(pair) for pair in headers]]
            for name, text, headers in patches
        ],
        "recipe": hashlib.sha256(recipe).hexdigest() if recipe is not None else None,
        "tests": list(tests),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _relative(path: Path, base: Path) -> str:
    return path.resolve().relative_to(base.resolve()).as_posix()


def _inside(base: Path, relative: object, what: str) -> Path:
    """``relative`` from a record, refused unless it stays inside ``base``."""
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"{what} is not a path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{what} {relative!r} leaves the entry")
    return base / pure


def _read_entry(key: str, entry: Path) -> CachedBuild:
    """An entry's record, files and packages; any damage raises (``load`` rebuilds)."""
    record = read_json_file(
        entry / "build.json", max_bytes=_MAX_RECORD, what="the package build record"
    )
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError("not a package build record of this format")
    out = record["output"]
    files = {
        str(name): _inside(entry / "files", name, "recipe file").read_bytes()
        for name in record["files"]
    }
    patches = {
        str(name): _inside(entry / "files", rel, "patch").read_bytes()
        for name, rel in record["patches"].items()
    }
    debs = tuple(_inside(entry, d, ".deb") for d in out["debs"])
    log = _inside(entry, out["log"], "build log")
    if not log.is_file() or not debs or not all(d.is_file() for d in debs):
        raise ValueError("a .deb or the build log is missing")
    buildinfo = out.get("buildinfo")
    output = BuildOutput(
        source=str(out["source"]),
        version=str(out["version"]),
        debs=debs,
        buildinfo=_inside(entry, buildinfo, "buildinfo") if buildinfo else None,
        log=log,
        buildflags=str(out["buildflags"]),
        root_sha256=str(out["root_sha256"]),
        duration=float(out["duration"]),
        patches=tuple(str(p) for p in out["patches"]),
        cves=tuple(str(c) for c in out["cves"]),
        profiles=tuple(str(p) for p in out["profiles"]),
        source_digests={str(k): str(v) for k, v in out["source_digests"].items()},
        build_options=str(out.get("build_options", "")),
    )
    return CachedBuild(key, output, files, patches, reused=True)


class PackageBuildCache:
    """Finished package builds under ``root``, one directory per key (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _entry(self, key: str) -> Path:
        if not _KEY.match(key):
            raise InputError(f"{key!r} is not a package build key (sha256 hex)")
        return self.root / key

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # a second worker waits here, then reuses
            yield

    def load(self, key: str) -> CachedBuild | None:
        """The finished entry for ``key`` (None: not built, or its record is unreadable)."""
        entry = self._entry(key)
        if not (entry / "build.json").is_file():
            return None
        try:
            found = _read_entry(key, entry)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InputError):
            # a damaged entry (a disk filled mid-copy, an edited record) is built again
            shutil.rmtree(entry, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):  # last use, for prune(); read-only disks too
            (entry / "used").touch()
        return found

    def prune(self, max_age: float = 30 * 86400, *, now: float | None = None) -> list[str]:
        """Remove entries unused for ``max_age`` seconds and the ``.partial`` directories of
        builds no worker holds; the names removed. A build in progress holds its lock, so
        it is never touched."""
        if not self.root.is_dir():
            return []
        now = time.time() if now is None else now
        removed: list[str] = []
        for path in sorted(self.root.iterdir()):
            key = path.name.split(".", 1)[0]
            if not _KEY.match(key) or path.is_symlink():
                continue
            with self._try_locked(key) as free:
                if not free:
                    continue  # a worker is building or reading this key right now
                if path.name == key and path.is_dir():
                    stamp = path / "used" if (path / "used").exists() else path / "build.json"
                    try:
                        used = stamp.stat().st_mtime
                    except OSError:
                        used = 0.0
                    if now - used < max_age:
                        continue
                    shutil.rmtree(path, ignore_errors=True)
                elif path.name == f"{key}.partial":
                    shutil.rmtree(path, ignore_errors=True)
                else:  # lock files stay: unlinking one a worker just opened would let a
                    # second worker lock a new file and build the same key at the same time
                    continue
                removed.append(path.name)
        return removed

    @contextlib.contextmanager
    def _try_locked(self, key: str) -> Iterator[bool]:
        """Hold ``key``'s lock if nobody does (True), else yield False at once."""
        try:
            fd = os.open(self.root / f"{key}.lock", os.O_RDONLY)
        except FileNotFoundError:
            yield True  # no lock file: no build of this key ever ran or runs
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def build_once(
        self,
        key: str,
        stage: Callable[[Path], StagedFiles],
        build: Callable[[Path, Path], BuildOutput],
    ) -> CachedBuild:
        """The entry for ``key``: reused when it exists (waiting for a build of the same key
        in progress), else ``stage(dir)`` writes the recipe and ``build(recipe, out_dir)``
        builds it; the entry appears (renamed into place) only when the build succeeded."""
        entry = self._entry(key)
        with self._locked(key):
            found = self.load(key)
            if found is not None:
                return found
            partial = self.root / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)  # a killed worker's leftovers
            partial.mkdir(parents=True)
            staged = stage(partial / "staging")
            output = build(staged.recipe, partial / "packages")
            for name, body in staged.files.items():
                atomic_write(_inside(partial / "files", name, "recipe file"), body)
            patch_paths = {
                name: next(
                    (rel for rel, body in staged.files.items() if rel.endswith(f"/{name}")),
                    f"patches/{name}",
                )
                for name in staged.patches
            }
            for name, rel in patch_paths.items():
                if rel not in staged.files:
                    atomic_write(_inside(partial / "files", rel, "patch"), staged.patches[name])
            record = {
                "format": FORMAT,
                "files": sorted(staged.files),
                "patches": patch_paths,
                "output": {
                    "source": output.source,
                    "version": output.version,
                    "debs": [_relative(d, partial) for d in output.debs],
                    "buildinfo": _relative(output.buildinfo, partial) if output.buildinfo else None,
                    "log": _relative(output.log, partial),
                    "buildflags": output.buildflags,
                    "root_sha256": output.root_sha256,
                    "duration": output.duration,
                    "patches": list(output.patches),
                    "cves": list(output.cves),
                    "profiles": list(output.profiles),
                    "source_digests": dict(output.source_digests),
                    "build_options": output.build_options,
                },
            }
            atomic_write(partial / "build.json", json.dumps(record, indent=1).encode())
            shutil.rmtree(entry, ignore_errors=True)
            partial.rename(entry)
            built = self.load(key)
            if built is None:
                raise InputError(f"{entry}: the package build just stored cannot be read back")
            return CachedBuild(key, built.output, built.files, built.patches, reused=False)
