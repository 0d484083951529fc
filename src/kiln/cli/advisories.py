"""``kiln advisories``: read and record the advisory event log (a thin adapter over
``kiln.vuln.advisories``): ``list``, ``show``, ``history``, ``record``, ``openvex`` and
``export-osv``."""

# kiln.vuln.advisories (SQLAlchemy, pydantic) loads inside the commands so that other
# commands start without it.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from kiln.cli.app import app, console
from kiln.errors import InputError
from kiln.text import plain_line

if TYPE_CHECKING:
    from kiln.vuln.advisories import AdvisoryEvent, AdvisoryState, AdvisoryStore

advisories_app = typer.Typer(
    help="The advisory event log per image and vulnerability ($KILN_DB).", no_args_is_help=True
)
app.add_typer(advisories_app, name="advisories")

ImageOption = Annotated[str | None, typer.Option("--image", help="only this image")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
DbOption = Annotated[
    str | None, typer.Option("--db", help="database path or SQLAlchemy URL (default $KILN_DB)")
]


def _open(db: str | None) -> AdvisoryStore:
    from kiln.vuln.advisories import AdvisoryStore

    return AdvisoryStore.open(db)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _when(value: datetime | None) -> str:
    from kiln.vuln.advisories.events import format_time

    return format_time(value) if value else ""


def _cell(value: object) -> Text:
    """A table cell shown as the text it is: no Rich markup, no control characters."""
    return Text(plain_line(str(value)))


def _states_table(states: list[AdvisoryState], title: str) -> None:
    from rich.table import Table

    table = Table(title=_cell(title))
    for column in ("image", "vulnerability", "package", "status", "last event", "time"):
        table.add_column(column, overflow="fold")
    for state in states:
        row = (
            state.image,
            state.vuln_id,
            state.package or "",
            state.resolution,
            state.last.kind.value,
            _when(state.last.time),
        )
        table.add_row(*map(_cell, row))
    console.print(table)


def _events_table(events: list[AdvisoryEvent], title: str) -> None:
    from rich.table import Table

    table = Table(title=_cell(title))
    for column in ("id", "time", "image", "vulnerability", "kind", "package", "data"):
        table.add_column(column, overflow="fold")
    for event in events:
        data = ", ".join(f"{k}={v}" for k, v in sorted(event.data.items()))
        row = (event.id, _when(event.time), event.image, event.vuln_id, event.kind.value,
               event.package or "", data)  # fmt: skip
        table.add_row(*map(_cell, row))
    console.print(table)


_STATUSES = (
    "under_investigation",
    "affected",
    "not_affected",
    "fixed",
    "pending-upstream-fix",
    "fix-not-planned",
)


@advisories_app.command("list")
def list_(
    image: ImageOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="only these statuses or resolutions (repeatable): " + ", ".join(_STATUSES),
        ),
    ] = None,
    unresolved: Annotated[
        bool, typer.Option("--unresolved", help="only affected or under investigation")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Where each vulnerability of each image stands: the newest determination."""
    wanted = set(status or ())
    unknown = sorted(wanted - set(_STATUSES))
    if unknown:
        raise InputError(
            f"--status {plain_line(unknown[0])[:40]!r} is not a status",
            hint=f"one of {', '.join(_STATUSES)}",
        )
    if unresolved:
        wanted |= {"affected", "under_investigation"}
    with _open(db) as store:
        states = store.state(image)
    if wanted:
        states = [s for s in states if {s.status, s.resolution} & wanted]
    if as_json:
        _print_json([s.to_json() for s in states])
    else:
        _states_table(states, f"advisories of {image}" if image else "advisories")


@advisories_app.command("show")
def show(
    image: Annotated[str, typer.Argument(help="image name (python, python-dev)")],
    vuln: Annotated[str, typer.Argument(help="vulnerability id (CVE-2024-1234)")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """One vulnerability in one image: its status and every event, oldest first."""
    from kiln.vuln.advisories.state import derive_state

    with _open(db) as store:
        events = store.history(image, vuln)
    if not events:
        raise InputError(
            plain_line(f"no advisory events for {vuln[:64]} in {image[:128]}"),
            hint="kiln advisories list shows what the store holds",
        )
    state = derive_state(events)
    if as_json:
        _print_json({"state": state.to_json(), "events": [e.to_json() for e in events]})
        return
    _states_table([state], f"{vuln} in {image}")
    _events_table(events, "events")


@advisories_app.command("history")
def history(image: ImageOption = None, as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every event in the log (of one image), oldest first."""
    with _open(db) as store:
        events = store.events(image)
    if as_json:
        _print_json([e.to_json() for e in events])
    else:
        _events_table(events, f"advisory events of {image}" if image else "advisory events")


def parse_data(pairs: list[str]) -> dict[str, str | list[str]]:
    """``key=value`` options as event data; a key given twice becomes a list."""
    data: dict[str, str | list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--data {pair!r}: expected KEY=VALUE")
        key = key.strip()
        if key in data:
            earlier = data[key]
            data[key] = [*(earlier if isinstance(earlier, list) else [earlier]), value]
        else:
            data[key] = value
    return data


@advisories_app.command("record")
def record(
    image: Annotated[str, typer.Argument(help="image name")],
    vuln: Annotated[str, typer.Argument(help="vulnerability id")],
    kind: Annotated[str, typer.Argument(help="event kind, e.g. false-positive-determination")],
    package: Annotated[
        str | None, typer.Option("--package", help="binary package name or purl")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="KEY=VALUE (repeatable), e.g. justification=component_not_present",
        ),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Append one event (a person's determination, say) to the log."""
    from kiln.vuln.advisories import AdvisoryEvent
    from kiln.vuln.advisories.events import parse_kind

    event = AdvisoryEvent(
        image, vuln, parse_kind(kind, where="kind"), package=package, data=parse_data(data or [])
    )
    with _open(db) as store:
        event_id = store.append(event)
        (stored,) = [e for e in store.history(image, vuln) if e.id == event_id]
    if as_json:
        _print_json(stored.to_json())
    else:
        console.print(
            f"recorded {stored.kind.value} for {vuln} in {image} (event {event_id})",
            highlight=False,
            markup=False,
        )


@advisories_app.command("openvex")
def openvex(
    image: Annotated[str, typer.Argument(help="image name")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write here (default stdout)")
    ] = None,
    author: Annotated[str, typer.Option(help="the document's author")] = "kiln",
    db: DbOption = None,
) -> None:
    """The image's OpenVEX v0.2.0 document from its determined advisories."""
    from kiln.fileio import atomic_write
    from kiln.vuln.advisories import openvex_for_image

    with _open(db) as store:
        document = openvex_for_image(store, image, author=author)
    if not document:
        raise InputError(
            f"no determined advisories for {image}: nothing to state",
            hint="a detection alone is not a VEX statement; record a determination first",
        )
    if output is None:
        typer.echo(document.decode())
    else:
        atomic_write(output, document + b"\n")
        console.print(f"wrote {output}", highlight=False, markup=False)


@advisories_app.command("export-osv")
def export_osv(
    outdir: Annotated[Path, typer.Argument(help="directory to write the OSV records into")],
    repo: Annotated[
        Path, typer.Option("--repo", help="kiln's apt repository (its pool/ holds the .debs)")
    ] = Path("aptrepo"),
    release: Annotated[
        str, typer.Option(help="the Debian release the rebuilds are for (VERSION_ID)")
    ] = "13",
    keep_stale: Annotated[
        bool,
        typer.Option(
            "--keep-stale", help="keep KILN-*.json records of fixes no longer in the repository"
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """OSV records of the CVEs kiln's rebuilt packages fix (their Kiln-Fixes field)."""
    from kiln.vuln.advisories.osv import export_osv as export

    written = export(repo, outdir, release=release, prune=not keep_stale)
    if as_json:
        _print_json([str(p) for p in written])
    else:
        console.print(
            f"wrote {len(written)} OSV records to {outdir}", highlight=False, markup=False
        )
