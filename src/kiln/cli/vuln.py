"""``kiln db update``, ``kiln db status``, ``kiln scan`` and ``kiln vex``: thin adapters
over ``kiln.vuln`` (parse options -> typed values -> pipeline -> render)."""

# Imports of kiln.vuln sit inside the commands so that every other kiln command starts
# without loading SQLAlchemy, Alembic and cyclonedx; typer commands mirror their options.
# ruff: noqa: PLC0415

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app, console, err_console
from kiln.cli.attest import Keyless, KeyOption, PasswordFile
from kiln.errors import InputError, PolicyError
from kiln.fileio import atomic_write
from kiln.pipeline.signing import bundle_signer
from kiln.vuln.feeds.registry import FEEDS
from kiln.vuln.lazymap import spoken_list
from kiln.vuln.report.formats import FORMATTERS

if TYPE_CHECKING:
    from rich.console import RenderableType

db_app = typer.Typer(help="Manage the vulnerability database ($KILN_DB).", no_args_is_help=True)
vex_app = typer.Typer(help="Write and inspect OpenVEX documents.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(vex_app, name="vex")

# --source and --format: the feed and formatter registries (cheap: names only)
SOURCES_HELP = spoken_list(list(FEEDS))
FORMATS_HELP = spoken_list(list(FORMATTERS))


@db_app.command("update")
def db_update(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help=SOURCES_HELP,
        ),
    ],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="FILE, DIR, ZIP or URL to import (default: the feed's URL)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="nvd: last-modified window start (ISO 8601)")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="import even if the input digest is unchanged")
    ] = False,
    db: Annotated[
        str | None, typer.Option(help="database path or SQLAlchemy URL (default $KILN_DB)")
    ] = None,
    all_sources: Annotated[
        bool, typer.Option("--all", help="debian-archive: every source package of main")
    ] = False,
    image: Annotated[
        list[str] | None,
        typer.Option(help="debian-archive: the source packages of this scan target (repeatable)"),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(help="debian-archive: the catalog whose locks name the sources (default)"),
    ] = None,
    distro: Annotated[
        str, typer.Option(help="debian-archive: the stable release to derive statuses for")
    ] = "debian-13",
) -> None:
    """Import one feed as a new snapshot (one transaction: all or nothing).

    debian-archive reads the configured mirror (no --from): the changelogs of the
    catalog's source packages (default), of --image targets, or of --all of main.
    """
    from kiln.pipeline.scan import FeedRequest, update_feed

    request = FeedRequest(
        source=source,
        from_=from_,
        since=since,
        force=force,
        all_sources=all_sources,
        images=tuple(image or ()),
        catalog=catalog,
        distro=distro,
    )
    result = update_feed(request, db)
    for w in result.warnings[:20]:
        err_console.print(f"warning: {w}", markup=False, highlight=False)
    if len(result.warnings) > 20:
        err_console.print(f"... and {len(result.warnings) - 20} more warnings")
    snap = result.snapshot
    if result.unchanged:
        console.print(f"{source}: unchanged (snapshot {snap.id}, {snap.digest[:19]})")
        return
    counts = ", ".join(f"{k}={v}" for k, v in sorted(snap.counts.items()))
    console.print(
        f"{source}: snapshot {snap.id} {snap.digest[:19]} at {snap.created_at} ({counts})"
    )


@db_app.command("status")
def db_status(
    db: Annotated[str | None, typer.Option(help="database path or SQLAlchemy URL")] = None,
) -> None:
    """List the current snapshot of each feed."""
    from rich.table import Table

    from kiln.vuln.db import VulnDB

    store = VulnDB.open(db)
    try:
        table = Table(title="vulnerability database snapshots")
        table.add_column("source", no_wrap=True)
        for col in ("snapshot", "digest", "imported", "records", "origin"):
            table.add_column(col, overflow="fold")
        for s in sorted(store.current().values(), key=lambda s: s.source):
            records = sum(v for k, v in s.counts.items() if k != "warnings")
            table.add_row(s.source, str(s.id), s.digest[:19], s.created_at, str(records), s.origin)
        console.print(table)
    finally:
        store.close()


@app.command()
def scan(
    target: Annotated[
        str | None,
        typer.Argument(
            help="OCI layout dir, image tar, rootfs dir, SBOM, dpkg status, "
            "or HOST[:PORT]/REPO[:TAG][@DIGEST] in a registry"
        ),
    ] = None,
    format_: Annotated[str, typer.Option("--format", help=FORMATS_HELP)] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the report here")
    ] = None,
    fail_on: Annotated[
        str | None, typer.Option(help="exit 1 if a finding is at least this severe")
    ] = None,
    fail_on_unstable_fixes: Annotated[
        bool,
        typer.Option(
            "--fail-on-unstable-fixes/--ignore-unstable-fixes",
            help="whether --fail-on counts findings only Debian unstable fixes (debian-archive)",
        ),
    ] = True,
    only_fixed: Annotated[
        bool, typer.Option("--only-fixed", help="only findings with a fix available")
    ] = False,
    ignore_unfixed: Annotated[
        bool, typer.Option("--ignore-unfixed", help="same as --only-fixed (trivy's name)")
    ] = False,
    vex: Annotated[
        list[Path] | None, typer.Option(help="OpenVEX or CycloneDX VEX document (repeatable)")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None, typer.Option(help="compare two targets: A B")
    ] = None,
    platform: Annotated[
        str | None, typer.Option(help="os/arch\\[/variant] of a multi-arch image")
    ] = None,
    db: Annotated[str | None, typer.Option(help="database path or SQLAlchemy URL")] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="public key: apply the VEX attached in the registry signed with it"),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plain HTTP to a non-loopback registry")
    ] = False,
) -> None:
    """Scan a target for known vulnerabilities."""
    from kiln.pipeline.scan import scan_target
    from kiln.vuln.model import Severity
    from kiln.vuln.scan import cyclic_gc_paused, gate
    from kiln.vuln.scan import only_fixed as keep_fixed

    if format_ not in FORMATTERS:
        raise InputError(
            f"unknown --format {format_!r}", hint=f"choose one of: {', '.join(FORMATTERS)}"
        )
    threshold = None
    if fail_on:
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    vex_files = vex or []
    if compare:
        _compare(compare, vex_files, db, platform, only_fixed or ignore_unfixed, key, insecure)
        return
    if target is None:
        raise InputError("give a TARGET to scan (or --compare A B)")
    result = scan_target(
        target, vex=vex_files, db=db, platform=platform, key=key, insecure=insecure
    )
    if only_fixed or ignore_unfixed:
        result = keep_fixed(result)
    with cyclic_gc_paused():  # a report is as many acyclic objects again as the scan
        _write_report(FORMATTERS[format_].render(result), output)
    if threshold is not None:
        failing = gate(result, threshold, unstable_fixes=fail_on_unstable_fixes)
        if failing:
            raise PolicyError(
                f"{len(failing)} finding(s) at or above {threshold.label} in {target}",
                details=[f"{f.id} {f.package_name} {f.package_version}" for f in failing[:10]],
            )


def _write_report(rendered: str | RenderableType, output: Path | None) -> None:
    """A document as it is; a renderable (the table) through a rich console."""
    if output is not None:
        if not isinstance(rendered, str):
            from rich.console import Console

            buffer = io.StringIO()  # crop=False: a long line keeps its end
            Console(file=buffer, width=160).print(rendered, crop=False)
            rendered = buffer.getvalue()
        atomic_write(output, rendered.encode())
    elif isinstance(rendered, str):
        sys.stdout.write(rendered)
    else:
        console.print(rendered, crop=False)


def _compare(
    pair: tuple[str, str],
    vex: list[Path],
    db: str | None,
    platform: str | None,
    fixed: bool,
    key: Path | None,
    insecure: bool,
) -> None:
    from rich.table import Table

    from kiln.pipeline.scan import is_registry_reference, scan_target
    from kiln.vuln.model import Severity
    from kiln.vuln.scan import only_fixed as keep_fixed

    results = []
    for t in pair:
        registry = key if is_registry_reference(t) else None
        r = scan_target(t, vex=vex, db=db, platform=platform, key=registry, insecure=insecure)
        results.append(keep_fixed(r) if fixed else r)
    a, b = results
    table = Table("severity", pair[0], pair[1], "reduction", title="findings by severity")
    ca, cb = a.counts(), b.counts()
    for s in sorted(Severity, reverse=True):
        table.add_row(
            s.label, str(ca[s.label]), str(cb[s.label]), _reduction(cb[s.label], ca[s.label])
        )
    ta, tb = len(a.active), len(b.active)
    table.add_row("total", str(ta), str(tb), _reduction(tb, ta), style="bold")
    table.add_row("packages", str(a.package_count), str(b.package_count), "")
    console.print(table)


def _reduction(baseline: int, candidate: int) -> str:
    """How much fewer ``candidate`` has than ``baseline`` (B is the reference image)."""
    if baseline == 0:
        return "-" if candidate == 0 else f"+{candidate}"
    return f"{100 * (baseline - candidate) / baseline:.0f}%"


@vex_app.command("create")
def vex_create(
    vulnerability: Annotated[str, typer.Option("--vuln", help="CVE / GHSA id")],
    product: Annotated[list[str], typer.Option(help="product purl (repeatable)")],
    status: Annotated[
        str, typer.Option(help="not_affected, affected, fixed or under_investigation")
    ],
    justification: Annotated[
        str | None, typer.Option(help="OpenVEX justification (not_affected)")
    ] = None,
    impact: Annotated[str | None, typer.Option("--impact-statement")] = None,
    action: Annotated[str | None, typer.Option("--action-statement")] = None,
    author: Annotated[str, typer.Option()] = "kiln",
    timestamp: Annotated[str | None, typer.Option(help="ISO 8601 (default: now)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Write an OpenVEX document with one statement."""
    from kiln.vuln.vex import (
        JUSTIFICATIONS,
        VEX_STATUSES,
        VexFormatError,
        VexStatement,
        write_openvex,
    )

    if status not in VEX_STATUSES:
        raise InputError(
            f"unknown VEX status {status!r}", hint=f"choose one of: {', '.join(VEX_STATUSES)}"
        )
    if justification is not None and justification not in JUSTIFICATIONS:
        raise InputError(
            f"unknown justification {justification!r}",
            hint=f"choose one of: {', '.join(JUSTIFICATIONS)}",
        )
    ts = timestamp or datetime.now(UTC).isoformat(timespec="seconds")
    st = VexStatement(
        vulnerability, frozenset(), tuple(product), status, justification, impact, action, ts
    )
    try:
        doc = write_openvex([st], author=author, timestamp=ts)
    except VexFormatError as exc:
        raise InputError(
            exc.message, hint="not_affected needs --justification or --impact-statement"
        ) from exc
    text = json.dumps(doc, indent=2) + "\n"
    if output:
        atomic_write(output, text.encode())
    else:
        sys.stdout.write(text)


@vex_app.command("attach")
def vex_attach(
    reference: Annotated[str, typer.Argument(help="HOST[:PORT]/REPO[:TAG][@DIGEST]")],
    document: Annotated[Path, typer.Argument(help="OpenVEX document (kiln vex create)")],
    key: KeyOption = None,
    keyless: Keyless = False,
    password_file: PasswordFile = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plain HTTP to a non-loopback registry")
    ] = False,
) -> None:
    """Sign an OpenVEX document about a published image and attach it in the registry."""
    from kiln.attest import Subject, vex_statement
    from kiln.attest.predicates import OPENVEX_0_2
    from kiln.attest.verify import attach_bundle
    from kiln.jsonlimits import read_json_file
    from kiln.registry import Reference, RegistryClient
    from kiln.vuln.vex import load_vex
    from kiln.vuln.vex.load import MAX_VEX_BYTES

    if not load_vex(document):  # refuses what scan could not read, before anything is signed
        raise InputError(f"{document}: the VEX document has no statements")
    data = read_json_file(document, max_bytes=MAX_VEX_BYTES, what="the VEX document")
    signer = bundle_signer(key, keyless, password_file)
    ref = Reference.parse(reference)
    with RegistryClient.for_host(ref.registry, insecure=insecure) as client:
        manifest = client.get_manifest(ref.repository, ref.digest or ref.identifier)
        subject = Subject.of(f"{ref.registry}/{ref.repository}", str(manifest.digest))
        bundle = signer.sign_statement(vex_statement([subject], data))
        attached = attach_bundle(
            client, ref.repository, manifest.descriptor, bundle, predicate_type=OPENVEX_0_2
        )
    console.print(f"attached VEX {attached.digest} to {ref.repository}@{manifest.digest}")


@vex_app.command("show")
def vex_show(
    document: Annotated[Path, typer.Argument(help="OpenVEX or CycloneDX VEX file")],
) -> None:
    """Validate a VEX document and list its statements."""
    from rich.table import Table

    from kiln.vuln.vex import load_vex

    table = Table("vulnerability", "status", "justification", "products")
    for st in load_vex(document):
        table.add_row(
            st.vulnerability,
            st.status,
            st.justification or st.impact_statement or "",
            "\n".join(st.products),
        )
    console.print(table)
