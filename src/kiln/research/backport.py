"""Before a backport: is the release's own source affected by the fix the finder chose?

``check_on_release`` fetches the release's source through kiln's signed source path
(``SourceBuilder.fetch``: signed Sources, checksums), unpacks it with its Debian patches
applied (``dpkg-source -x`` in the sandbox) and runs ``kiln.research.affected.decide``
against the fix's diff. ``kiln research --backport`` stops on ``not_affected`` (issue #17:
record ``vulnerable_code_not_present`` with the hunks as evidence instead of a patch); the
factory's research step makes it a VEX statement. Otherwise it checks that the fix
applies to the tree as ``backport_patch`` will (``patch -p1 -F 0`` over Debian's patches).
When it does not and the upstream repository has the tag of the source's upstream
version, the fix is ported by a 3-way merge onto that tag (``kiln.research.port``) and
the ported diff must apply instead; a conflict names the conflicted files and the hunks
``patch`` rejected. Nothing outside temporary folders is written on any of these paths.
``check_tree`` is the same on a tree already unpacked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiln.debian.distro import DISTROS
from kiln.errors import InputError
from kiln.pipeline.backport import PatchRejectedError, apply_patches
from kiln.pipeline.source import SourceBuilder
from kiln.recipes.build import unpack_source
from kiln.research.affected import AffectedVerdict, decide
from kiln.research.discover import has_upstream_history, upstream_version
from kiln.research.gitrepo import GitRepo
from kiln.research.port import port_commit


@contextmanager
def _release_tree(
    source: str,
    version: str,
    *,
    work: Path,
    release: str,
    builder: SourceBuilder | None,
) -> Iterator[Path]:
    """``source`` ``version`` of ``release`` unpacked with Debian's patches under ``work``;
    the tree and its unpack log are removed afterwards (and ``work`` when kiln made it)."""
    distro = next((d for d in DISTROS.values() if release in (d.codename, d.id)), None)
    if distro is None:
        raise InputError(f"unknown release {release!r}")
    fetcher = builder if builder is not None else SourceBuilder.from_environment()
    fetched, _ = fetcher.fetch(distro, source, version=version)
    made = not work.exists()
    scratch = work / "affected"
    log = work / "affected.log"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        tree = unpack_source(fetched, Path("/"), scratch, log=log)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)  # the log stays: the error names it
        raise
    try:
        yield tree
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        log.unlink(missing_ok=True)
        if made and not any(work.iterdir()):
            work.rmdir()


@dataclass(frozen=True)
class ReleaseCheck:
    """The verdict on the release's tree and the diff that applies to it."""

    verdict: AffectedVerdict
    diff: bytes  # the commit's own diff, or its port
    ported_onto: str | None = None  # the upstream tag the port was merged onto
    rejected: tuple[str, ...] = ()  # what patch said about the commit's own diff
    note: str = ""  # why a not_affected from the hunks was not taken


def check_on_release(
    source: str,
    version: str,
    diff: bytes,
    *,
    name: str,
    work: Path,
    repo: GitRepo | None = None,
    sha: str = "",
    advisory: str | None = None,
    release: str = "trixie",
    builder: SourceBuilder | None = None,
) -> ReleaseCheck:
    """Affected or not, then: does ``diff`` (commit ``sha`` of ``repo``) apply to the tree?

    ``not_affected`` is returned without an apply check, unless ``advisory`` says the
    advisory's own version ranges include this version (``versions.advisory_affects``):
    the hunks' pre-images are looked for as they are in the fix, so code that moved
    since the release looks absent; then the verdict is ``under_investigation`` (with
    ``note``) and the apply check runs. A diff that does not apply is
    ported onto the tag of the version's upstream part when ``repo`` has it (see the
    module); without ``repo`` or the tag, the ``PatchRejectedError`` of the plain check
    stands. The port must apply to the tree as well (``PatchRejectedError`` if not).
    """
    with _release_tree(source, version, work=work, release=release, builder=builder) as tree:
        return check_tree(
            tree, source, version, diff, name=name, repo=repo, sha=sha, advisory=advisory
        )


def check_tree(
    tree: Path,
    source: str,
    version: str,
    diff: bytes,
    *,
    name: str,
    repo: GitRepo | None = None,
    sha: str = "",
    advisory: str | None = None,
) -> ReleaseCheck:
    """``check_on_release`` on ``tree``, ``source`` ``version`` already unpacked with its
    Debian patches: the patch check writes into ``tree`` (pass a copy to keep it)."""
    verdict = decide(diff.decode("utf-8", "replace"), tree)
    note = ""
    if verdict.status == "not_affected":
        if advisory is None:
            return ReleaseCheck(verdict, diff)
        note = (
            f"no hunk's pre-image is in {source} {version} as the fix has it, but "
            f"{advisory}: the code may have moved, so not_affected is not claimed"
        )
        verdict = AffectedVerdict("under_investigation", None, verdict.hunks)
    try:
        diff, tag, rejected = _applying(
            tree, diff, source=source, version=version, name=name, repo=repo, sha=sha
        )
    except PatchRejectedError as exc:
        if note:
            exc.details.append(f"note: {note}")
        raise
    return ReleaseCheck(verdict, diff, ported_onto=tag, rejected=rejected, note=note)


def _applying(
    tree: Path, diff: bytes, *, source: str, version: str, name: str, repo: GitRepo | None, sha: str
) -> tuple[bytes, str | None, tuple[str, ...]]:
    """(the diff that applies to ``tree``, the tag it was ported onto, what patch said)."""
    try:
        apply_patches(tree, [(name, diff)])
    except PatchRejectedError as plain:
        rejected = tuple(plain.details)
        upstream = upstream_version(version)
        tag = has_upstream_history(repo, upstream) if repo is not None and sha else None
        if repo is None or tag is None:
            if repo is not None:
                plain.hint = (
                    f"{repo.name} has no tag for upstream version {upstream}, so no "
                    f"3-way port was tried; {plain.hint}"
                )
            raise
        target = f"{source} {version}"
        ported = port_commit(repo, sha, tag, target=target, rejected=rejected)
        try:
            apply_patches(tree, [(name, ported)])
        except PatchRejectedError as again:
            raise PatchRejectedError(
                f"the fix {sha[:12]} merges cleanly onto {tag}, but that port does not "
                f"apply to {target} (Debian's patches change the same code)",
                details=[
                    *(f"port: {line}" for line in again.details),
                    *(f"patch: {line}" for line in rejected),
                ],
                hint=again.hint,
            ) from None
        return ported, tag, rejected
    return diff, None, ()
