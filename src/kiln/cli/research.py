"""``kiln research CVE``: find the upstream commit that fixes a CVE, rank the candidates.

Prints the top candidates of kiln's ranker with their scores and the features that
fired (``--json``: both rankings and the evidence). The CVE's text comes from a
fixbench-style ``--record FILE``, else ``--description``/``--published``, else kiln's
vulnerability database. ``--affected TREE`` decides whether an unpacked source tree
carries the code the top candidate changes; ``--patch FILE`` writes the top candidate
as a quilt patch with DEP-3 headers; ``--backport`` hands that patch to the backport
pipeline (``kiln.pipeline.backport.backport_patch``: build with the package's tests,
kiln repository, image rebuild and scan). With ``--package SRC`` and no ``--repo`` the
upstream repository is found from SRC's packaging (``kiln.research.discover``: candidate
URLs printed, ``KILN_RESEARCH_MIRRORS`` first, then a bounded clone).
"""

# kiln.research and kiln.pipeline load inside the command so other commands start fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app, console, err_console
from kiln.errors import InputError, Location, PolicyError

if TYPE_CHECKING:
    from kiln.pipeline.backport import BackportResult, UnstableFix
    from kiln.research.gitrepo import Commit, GitRepo
    from kiln.research.record import CveRecord


@app.command(name="research")
def research_command(
    cve: Annotated[str, typer.Argument(help="the vulnerability id, e.g. CVE-2025-49014")],
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="upstream repository: a local clone (bare or not) or a URL "
            "(default: found from --package's packaging, KILN_RESEARCH_MIRRORS first)",
        ),
    ] = None,
    package: Annotated[
        str | None,
        typer.Option(
            "--package",
            help="Debian source package: its unstable DEP-3 patches name commits (network); "
            "the package --backport builds",
        ),
    ] = None,
    record_file: Annotated[
        Path | None, typer.Option("--record", help="a fixbench-style JSON record of the CVE")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="the CVE's description")
    ] = None,
    published: Annotated[
        str | None, typer.Option("--published", help="publication date (ISO 8601)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    discuss: Annotated[
        bool,
        typer.Option(
            "--discuss",
            help="read the pull requests/issues the advisory links (GitHub, GitLab APIs; "
            "GITHUB_TOKEN/GITLAB_TOKEN)",
        ),
    ] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="candidates shown")] = 10,
    model: Annotated[
        Path | None, typer.Option("--model", help="a ranker JSON (default: the shipped one)")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="vulnerability database (default $KILN_DB)")
    ] = None,
    affected: Annotated[
        Path | None,
        typer.Option("--affected", help="unpacked source tree: is its code the fix's pre-image?"),
    ] = None,
    patch: Annotated[
        Path | None, typer.Option("--patch", help="write the top candidate as a quilt patch")
    ] = None,
    backport: Annotated[
        bool, typer.Option("--backport", help="build, test and publish the top candidate")
    ] = False,
    version: Annotated[
        str | None, typer.Option("--version", help="--backport: the release's source version")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="--backport: catalog root (recipes, images)")
    ] = None,
    work: Annotated[Path | None, typer.Option("--work", help="--backport: work folder")] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="--backport: the image to rebuild and scan")
    ] = None,
) -> None:
    """Rank the upstream commits that may fix CVE; optionally patch and backport the best."""
    from kiln.research.affected import decide
    from kiln.research.finder import find_fix_commits
    from kiln.research.gitrepo import open_repo
    from kiln.research.patch import commit_diff, dep3_headers, render_patch
    from kiln.research.rank import load_model
    from kiln.research.record import CVE_ID, CveRecord, load_record_file, parse_date

    if not CVE_ID.match(cve):
        raise InputError(f"{cve!r} is not a vulnerability id (CVE-YYYY-NNNN)")
    if repo is None and package is None:
        raise InputError(
            "--repo or --package is needed: the upstream repository to search",
            hint="a local clone (git clone --bare URL), the repository's URL, or the "
            "Debian source package whose upstream repository kiln should find",
        )
    unstable = _unstable_fix(package, cve) if package is not None else None
    if record_file is not None:
        record = load_record_file(record_file).record
        if record.cve != cve:
            raise InputError(
                f"the record is about {record.cve}, not {cve}", location=Location(str(record_file))
            )
    elif description is not None:
        when = parse_date(published, Location("--published")) if published else None
        record = CveRecord(cve=cve, description=description, published=when)
    else:
        record = _record_from_db_or_archive(cve, db, unstable)
    if unstable is not None:
        # unstable's DEP-3 patches may name the upstream commit (signed packaging tarball)
        from kiln.research.dep3 import with_patch_origins

        record = with_patch_origins(record, [p.headers for p in unstable.patches])
    if discuss:
        from kiln.research.discussion import (
            Adapter,
            GitHubAdapter,
            GitLabAdapter,
            with_discussion,
        )

        adapters: list[Adapter] = [
            GitHubAdapter(token=os.environ.get("GITHUB_TOKEN") or None),
            GitLabAdapter(token=os.environ.get("GITLAB_TOKEN") or None),
        ]
        record, discussion_log = with_discussion(record, adapters)
        for line in discussion_log:
            err_console.print(f"discussion: {line}", highlight=False, markup=False)
    ranker = load_model(model)
    from kiln.research.llm import LlmReranker

    reranker = LlmReranker.from_environment()  # off unless KILN_RESEARCH_LLM_URL is set
    rerank_log = None
    upstream: dict[str, object] | None = None
    with ExitStack() as stack:
        if repo is not None:
            git = stack.enter_context(open_repo(repo))
            repo_url = repo if "://" in repo else None
        else:
            assert package is not None  # noqa: S101 (checked above)
            git, upstream = _discovered(stack, package)
            repo_url = str(upstream["url"])
        ranking = find_fix_commits(record, git, ranker)
        if reranker is not None and ranking.kiln:
            reordered, rerank_log = reranker.rerank(record, ranking.kiln)
            ranking = dataclasses.replace(ranking, kiln=reordered)
            err_console.print(
                "LLM re-ranker: "
                + (
                    f"ignored ({rerank_log.ignored})"
                    if rerank_log.ignored
                    else "reordered the top 10"
                ),
                highlight=False,
                markup=False,
            )
        best = ranking.kiln[0] if ranking.kiln else None
        verdict = None
        if affected is not None and best is not None:
            verdict = decide(git.show(best.commit.sha), affected)
        diff = b""
        headers: list[tuple[str, str]] = []
        if (patch is not None or backport) and best is not None:
            headers = dep3_headers(record, best.commit, repo_url=repo_url, today=dt.date.today())
            diff = commit_diff(git, best.commit)
            if patch is not None:
                from kiln.fileio import atomic_write

                atomic_write(patch, render_patch(headers, diff))
        if as_json:
            out: dict[str, object] = {
                "cve": cve,
                "candidates": ranking.candidates,
                "seconds": round(ranking.seconds, 2),
                "kiln": [r.as_json() for r in ranking.kiln[:top]],
                "baseline": [r.as_json() for r in ranking.baseline[:top]],
            }
            if verdict is not None:
                out["affected"] = verdict.as_json()
            if upstream is not None:
                out["upstream"] = upstream
            if rerank_log is not None:
                out["llm_rerank"] = rerank_log.as_json()
            console.print_json(json.dumps(out))
        else:
            console.print(
                f"{cve}: {ranking.candidates} candidates in {ranking.seconds:.1f} s",
                highlight=False,
            )
            for i, r in enumerate(ranking.kiln[:top], 1):
                console.print(
                    f"{i:>2}. {r.commit.sha[:12]} {r.score:+.2f} {r.commit.subject[:70]}",
                    highlight=False,
                    markup=False,
                )
                console.print(
                    f"    {'; '.join(r.features.fired[:8])}", highlight=False, markup=False
                )
            if verdict is not None:
                console.print(
                    f"affected? {verdict.status}"
                    + (f" ({verdict.justification})" if verdict.justification else ""),
                    highlight=False,
                )
                for h in verdict.hunks:
                    mark = "present" if h.present else f"missing: {h.reason}"
                    console.print(f"    {h.hunk.path} {h.hunk.header[:60]}: {mark}", markup=False)
        if best is None:
            raise PolicyError(
                f"no candidate commits for {cve} in {repo or repo_url}",
                hint="the search window comes from the publication date and the affected "
                "versions: pass --published, or a --record with version ranges",
            )
        if patch is not None:
            err_console.print(f"wrote {patch}", highlight=False)
        if backport:  # inside the with: a 3-way port reads the repository
            _backport(
                cve, package, version, catalog, work, image, diff, headers, best.commit, git,
                record, db,
            )  # fmt: skip


def _discovered(stack: ExitStack, package: str) -> tuple[GitRepo, dict[str, object]]:
    """The upstream repository of ``package`` found by discovery (opened on ``stack``).

    Prints the candidate URLs and which one was used (a mirror folder or a clone), or
    fails with ``UpstreamNotFoundError`` listing every candidate and why it did not open.
    The second value is the same for ``--json`` (``upstream``).
    """
    from kiln.research.discover import discover, fetch_packaging, mirror_dirs, open_upstream

    found = discover(fetch_packaging(package))
    say = err_console.print
    say(
        f"upstream of {package} {found.packaging.version}: {len(found.candidates)} candidate(s)",
        highlight=False,
        markup=False,
    )
    for candidate in found.candidates:
        say(f"  candidate: {candidate.describe()}", highlight=False, markup=False)
    for note in found.notes:
        say(f"  note: {note}", highlight=False, markup=False)
    git, used = stack.enter_context(open_upstream(found, mirrors=mirror_dirs(os.environ)))
    for url, why in used.tried:
        say(f"  not used: {url}: {why}", highlight=False, markup=False)
    say(f"  using {used.candidate.url} from {used.location}", highlight=False, markup=False)
    return git, {
        "url": used.candidate.url,
        "location": used.location,
        "packaging": f"{package} {found.packaging.version}",
        "candidates": [{"url": c.url, "from": list(c.origins)} for c in found.candidates],
        "not_used": [{"url": url, "why": why} for url, why in used.tried],
        "notes": found.notes,
    }


def _unstable_fix(package: str, cve: str) -> UnstableFix | None:
    """Where Debian unstable fixes ``cve`` in ``package`` (signed packaging), or None;
    a mirror lacking unstable's packaging is one missing source among several."""
    from kiln.pipeline.backport import MirrorMissingError, find_unstable_fix

    try:
        return find_unstable_fix(package, cve)
    except MirrorMissingError as exc:
        err_console.print(
            f"unstable's packaging of {package} not read: {exc.message}",
            highlight=False,
            markup=False,
        )
        return None


def _record_from_db_or_archive(cve: str, db: str | None, unstable: UnstableFix | None) -> CveRecord:
    """``cve``'s record from kiln's database, else from the Debian unstable changelog
    entry that names its fix (``--package``; ``vulndb.record_from_db_or_unstable``)."""
    from kiln.research.vulndb import record_from_db_or_unstable
    from kiln.vuln.db import default_db_url
    from kiln.vuln.db.read import as_db_url

    record, note = record_from_db_or_unstable(
        cve, as_db_url(db) if db else default_db_url(), unstable
    )
    if note:
        err_console.print(note, highlight=False, markup=False)
    if record is None:
        raise InputError(
            f"{cve} is not in the vulnerability database",
            hint="run kiln db update, or pass --record FILE or --description TEXT; with "
            "--package, a Debian unstable changelog naming its fix is used",
        )
    return record


def _backport(
    cve: str,
    package: str | None,
    version: str | None,
    catalog: Path | None,
    work: Path | None,
    image: str | None,
    diff: bytes,
    headers: list[tuple[str, str]],
    commit: Commit,
    git: GitRepo,
    record: CveRecord,
    db: str | None,
) -> None:
    """Hand the top candidate's diff to the backport pipeline (``backport_patch``; the
    image's scans read ``--db``).

    First asks the release's own packaging (``release_status``; when the mirror lacks
    the newest version's packaging tarball, a binary package's changelog): a CVE
    trixie's changelog or patches already fix is refused (``PolicyError``: nothing to
    backport, and the patch would not apply over Debian's). ``--version`` defaults to
    trixie's newest, which must be on the mirror (``MirrorMissingError`` naming the
    newest that is); an older ``--version`` is taken with a warning listing the CVEs the
    newer versions fix, also written into the recipe's note. Then decides
    affected-or-not on that source and checks the patch applies, porting it by a 3-way
    merge onto the upstream tag when it does not (``check_on_release``).
    """
    if package is None or catalog is None:
        missing = [n for n, v in (("--package", package), ("--catalog", catalog)) if v is None]
        raise InputError(f"--backport needs {', '.join(missing)}")
    from kiln.debian.version import compare_versions, parse_version
    from kiln.pipeline.backport import MirrorMissingError, backport_patch, release_status
    from kiln.recipes.build import BuildError
    from kiln.research.backport import check_on_release
    from kiln.research.discover import upstream_version
    from kiln.research.patch import add_port_hint, ported_headers
    from kiln.research.versions import advisory_affects

    say = err_console.print
    status = release_status(package, cve)
    if not status.patches_known:
        say(f"{package} {status.version} ({status.release}): read {status.evidence}",
            highlight=False, markup=False)  # fmt: skip
    if status.fixed:
        where = [f"changelog: {status.fixed_line}"] if status.fixed_line else []
        where += [f"debian/patches/{name}" for name in status.patches]
        raise PolicyError(
            f"{package} {status.version} ({status.release}) already fixes {cve}: "
            "nothing to backport",
            hint="kiln scan reads the release's changelog; update the image's lock "
            "(kiln lock) to take Debian's fixed version",
            details=[*where, f"read: {status.evidence}"],
        )
    if version is None and status.fetchable != status.version:
        newest = (
            f"the newest version whose source it has is {status.fetchable}: pass "
            f"--version {status.fetchable} to backport onto it"
            if status.fetchable
            else "it has the source of no version of it"
        )
        raise MirrorMissingError(
            f"the mirror lacks the source of {package} {status.version}, {status.release}'s "
            f"newest; {newest}",
            details=[f"read: {status.evidence}"],
            hint="an older version lacks the fixes of the newer ones (listed when you pass "
            "--version); or use a mirror that has the source (kiln config mirrors.debian)",
        )
    base, folder = version or status.version, work or Path("kiln-backport")
    try:
        parse_version(base)
    except ValueError as exc:
        raise InputError(f"--version {base!r} is not a Debian version: {exc}") from exc
    note = ""
    if compare_versions(base, status.version) < 0:
        lacking = status.fixed_after(base)
        named = "; ".join(f"{m.cve} (fixed in {m.version})" for m in lacking)
        note = (
            f"{package} {base} with {cve} fixed (kiln backport); WARNING: {base} is older "
            f"than {status.release}'s newest {status.version}, and this rebuild lacks "
            + (f"the fixes of the newer versions: {named}" if lacking else "its changes")
        )
        say(f"warning: {note.split('WARNING: ', 1)[1]}", highlight=False, markup=False)
    name = f"{cve}-{commit.sha[:12]}.patch"
    advisory = advisory_affects(record, upstream_version(base))
    checked = check_on_release(package, base, diff, name=name, work=folder, repo=git,
                               sha=commit.sha, advisory=advisory)  # fmt: skip
    if checked.note:
        say(f"note: {checked.note}", highlight=False, markup=False)
    verdict = checked.verdict
    missing = [f"{h.hunk.path} {h.hunk.header}: {h.reason}" for h in verdict.hunks if not h.present]
    if verdict.status == "not_affected":
        raise PolicyError(
            f"{package} {base} ({status.release}) is not affected by {cve} "
            f"(vulnerable_code_not_present): no hunk of {commit.sha[:12]} has a counterpart",
            hint="record not_affected in the image's VEX instead of a patch",
            details=missing,
        )
    say(
        f"affected? {verdict.status} ({package} {base}); "
        f"{len(verdict.hunks) - len(missing)} of {len(verdict.hunks)} hunks present",
        highlight=False,
        markup=False,
    )
    if checked.ported_onto is not None:
        headers = ported_headers(headers, checked.ported_onto)
        say(f"the fix did not apply as is; ported by a 3-way merge onto {checked.ported_onto}, "
            f"and the port applies to {package} {base}", highlight=False, markup=False)  # fmt: skip
    try:
        result = backport_patch(
            package, base, checked.diff, headers, [cve], name=name,
            catalog_root=catalog, work=folder, image=image, note=note, db=db,
        )  # fmt: skip
    except BuildError as exc:
        if checked.ported_onto is not None:
            add_port_hint(exc, checked.ported_onto, f"{package} {base}")
        raise
    for line in backport_summary(result):
        say(f"backport: {line}", highlight=False, markup=False)


def backport_summary(result: BackportResult) -> list[str]:
    """The backport's outcome in a few lines: build, tests, repository, image and scans."""
    tests = result.package_tests
    lines = [
        f"built {result.source} {result.kiln_version} ({len(result.packages)} .debs, "
        f"{result.build_seconds:.0f} s) from {result.base_version}; published to "
        f"{result.apt_repository}",
        f"package tests: {'ran' if tests.ran else 'none ran'} "
        f"({'; '.join(tests.summary[-3:]) or f'{tests.lines} output lines'}), see {tests.log}",
    ]
    if tests.recipe_tests:
        failed = [name for name, ok, _ in tests.recipe_tests if not ok]
        lines.append(
            f"recipe tests: {len(tests.recipe_tests) - len(failed)} passed"
            + (f", failed: {', '.join(failed)}" if failed else "")
        )
    if result.image is not None:
        img = result.image
        before = ", ".join("listed" if s.cve_reported else "not listed" for s in img.before)
        after = ", ".join("listed" if s.cve_reported else "not listed" for s in img.after)
        lines += [
            f"image {img.name} ({', '.join(img.variants)}): {img.tests_passed} tests passed, "
            f"{img.tests_failed} failed; Kiln-Fixes "
            + ", ".join(f"{k}: {v}" for k, v in sorted(img.kiln_fixes.items())),
            f"scan before: {', '.join(result.cves)} {before or 'not scanned'}; after: {after}",
            *(f"note: {n}" for n in img.notes),
        ]
    lines.append("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    return lines
