"""Build roots: a Debian ``buildd`` chroot with a package's Build-Depends, cached by digest.

A build root is made once per (codename, architecture, build-dependency set, build
profiles) with ``mmdebstrap --variant=buildd`` (https://gitlab.mister-muffin.de/josch/mmdebstrap)
from the mirrors kiln reads, plus the source package's Build-Depends installed with
``apt-get satisfy`` (which understands arch qualifiers ``[amd64]`` and build profiles
``<!nocheck>``), and ``fakeroot`` as on Debian's buildds. ``SOURCE_DATE_EPOCH`` makes
mmdebstrap's tarball reproducible. The tarball is kept in
``$KILN_CACHE/buildroots/<digest>.tar``; every build extracts a fresh copy, so nothing
a build does survives into the next one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.debian.distro import Distro
from kiln.errors import EnvironmentProblem
from kiln.fileio import atomic_write, sha256_file
from kiln.progress import NO_PROGRESS, Progress

# 2: every root has fakeroot, as sbuild's chroots do (its core dependencies), for the
# sources whose debian/control asks for root (Rules-Requires-Root: binary-targets).
ROOT_FORMAT = 2
ROOT_PACKAGES = ("fakeroot",)
_MMDEBSTRAP_TIMEOUT = 3600.0


@dataclass(frozen=True)
class BuildRootSpec:
    """What determines a build root's content (its cache key)."""

    distro: Distro
    arch: str
    build_depends: str  # relations as in the Sources index, for ``apt-get satisfy``
    profiles: tuple[str, ...] = ()
    epoch: int = 0  # SOURCE_DATE_EPOCH for mmdebstrap

    def key_document(self) -> dict[str, object]:
        """The cache key's content; profiles count only when a relation is restricted by one."""
        relations = " ".join(self.build_depends.split())
        return {
            "format": ROOT_FORMAT,
            "codename": self.distro.codename,
            "arch": self.arch,
            "build-depends": relations,
            "profiles": sorted(self.profiles) if "<" in relations else [],
            "epoch": self.epoch,
        }

    @property
    def digest(self) -> str:
        text = json.dumps(self.key_document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class BuildRoot:
    """A cached build-root tarball and the sha256 of its bytes (for provenance)."""

    spec: BuildRootSpec
    tarball: Path
    sha256: str
    created: bool  # False when it came from the cache


def mmdebstrap_argv(
    spec: BuildRootSpec, suite_urls: Mapping[str, str], output: Path, *, components: str = "main"
) -> list[str]:
    """The mmdebstrap command line (pure, so tests can check it)."""
    satisfy = ["chroot", '"$1"', "apt-get", "satisfy", "-y", "--no-install-recommends"]
    if spec.profiles:
        satisfy += ["-o", f"APT::Build-Profiles={','.join(sorted(spec.profiles))}"]
    relations = " ".join(spec.build_depends.split()).replace("'", "")
    hooks = [
        "--customize-hook=" + " ".join(satisfy) + f" '{relations}'" if relations else "",
        '--customize-hook=chroot "$1" apt-get clean',
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/*',
    ]
    mirrors = [f"deb {url} {suite} {components}" for suite, url in suite_urls.items()]
    return [
        "mmdebstrap",
        "--variant=buildd",
        f"--architectures={spec.arch}",
        "--mode=unshare",
        "--format=tar",
        f"--include={','.join(ROOT_PACKAGES)}",
        *[h for h in hooks if h],
        spec.distro.codename,
        str(output),
        *mirrors,
    ]


def ensure_build_root(
    spec: BuildRootSpec,
    *,
    cache_root: Path,
    suite_urls: Mapping[str, str],
    log: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> BuildRoot:
    """The cached root for ``spec``, creating it with mmdebstrap when absent.

    Concurrent kiln processes wanting the same root wait for the one creating it (an
    exclusive ``flock`` on ``<digest>.lock``) instead of running mmdebstrap twice.
    Creating one takes minutes: it is a ``progress`` phase fed with mmdebstrap's lines.
    """
    directory = cache_root / "buildroots"
    tarball = directory / f"{spec.digest}.tar"
    digest_file = directory / f"{spec.digest}.sha256"
    if tarball.is_file() and digest_file.is_file():
        return BuildRoot(spec, tarball, digest_file.read_text().strip(), created=False)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{spec.digest}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file() and digest_file.is_file():
            return BuildRoot(spec, tarball, digest_file.read_text().strip(), created=False)
        what = f"creating the {spec.distro.codename}/{spec.arch} build root (mmdebstrap)"
        with progress.phase(what) as phase:
            return _create_root(
                spec,
                directory=directory,
                tarball=tarball,
                digest_file=digest_file,
                suite_urls=suite_urls,
                log=log,
                on_line=phase.update,
            )


def _create_root(
    spec: BuildRootSpec,
    *,
    directory: Path,
    tarball: Path,
    digest_file: Path,
    suite_urls: Mapping[str, str],
    log: Path | None,
    on_line: Callable[[str], None],
) -> BuildRoot:
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise EnvironmentProblem(
            "mmdebstrap is not installed; kiln creates build roots with it",
            hint="apt-get install mmdebstrap",
        )
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".root-", suffix=".tar", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    argv = [mmdebstrap, *mmdebstrap_argv(spec, suite_urls, tmp)[1:]]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SOURCE_DATE_EPOCH": str(spec.epoch),
        "LC_ALL": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),  # noqa: S108
    }
    try:
        returncode, output = _run_streaming(argv, env, _MMDEBSTRAP_TIMEOUT, on_line)
    except (OSError, subprocess.TimeoutExpired) as exc:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(f"could not run mmdebstrap: {exc}") from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(output)
    if returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = output.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise EnvironmentProblem(
            f"mmdebstrap could not create the {spec.distro.codename}/{spec.arch} build root",
            details=tail,
            hint="check the mirror is reachable and the Build-Depends are installable",
        )
    sha = sha256_file(tmp)
    os.replace(tmp, tarball)
    atomic_write(digest_file, f"{sha}\n".encode())
    return BuildRoot(spec, tarball, sha, created=True)


def _run_streaming(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, on_line: Callable[[str], None]
) -> tuple[int, bytes]:
    """Run ``argv`` with stdout and stderr merged, passing each line on as it comes.

    Returns the exit code and the whole output; ``TimeoutExpired`` after ``timeout`` s
    (the process is killed).
    """
    chunks: list[bytes] = []
    expired = threading.Event()
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env)
    ) as proc:

        def kill() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            for raw in proc.stdout or ():
                chunks.append(raw)
                on_line(raw.decode("utf-8", "replace").rstrip())
            returncode = proc.wait()
        finally:
            timer.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(list(argv), timeout, b"".join(chunks))
    return returncode, b"".join(chunks)


def extract_root(tarball: Path, dest: Path) -> None:
    """Extract a fresh copy of a build root (as created by mmdebstrap) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["tar", "-x", "-f", str(tarball), "-C", str(dest), "--same-owner",
             "--numeric-owner", "--exclude=./dev/*"],
            capture_output=True, timeout=600, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"could not extract build root {tarball}: {exc}") from exc
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"could not extract build root {tarball}: {proc.stderr.decode()[-500:]}"
        )


def list_root(tarball: Path) -> Sequence[str]:
    """Member names of a root tarball (for tests and diagnostics)."""
    with tarfile.open(tarball) as archive:
        return archive.getnames()
