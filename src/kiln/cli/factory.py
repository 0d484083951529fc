"""``kiln factory run|watch|worker|status|prs|retry``: the remediation loop's commands.

Thin adapters over ``kiln.factory``: they find the checkout (the git repository the
command runs in), the Temporal to use (``KILN_TEMPORAL`` or the local dev server kiln
starts under ``.kiln/temporal``), and render what the engine answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from kiln.cli.app import app, console, err_console
from kiln.errors import InputError

if TYPE_CHECKING:
    from kiln.factory.engine import FactoryStatus, WatchStatus
    from kiln.factory.model import ReconcileResult
    from kiln.factory.server import Endpoint
    from kiln.factory.watch import WatchActivities

# The engine (temporalio), the steps and the forge load inside the commands.
# ruff: noqa: PLC0415

factory_app = typer.Typer(
    help="The remediation loop: watch, reconcile each image, open pull requests.",
    no_args_is_help=True,
)
app.add_typer(factory_app, name="factory")

CatalogOption = Annotated[
    Path | None,
    typer.Option("--catalog", help="the catalog checkout (default: the one you are in)"),
]


def _quiet_engine_logs() -> None:
    """The SDK logs every failed activity attempt with its traceback; the factory reports
    them itself (events, dead letters, status), so only the SDK's errors are shown."""
    logging.getLogger("temporalio").setLevel(logging.ERROR)


def _root(catalog: Path | None) -> Path:
    _quiet_engine_logs()
    from kiln.factory.wiring import checkout_root

    return checkout_root(catalog or Path.cwd())


def _endpoint(root: Path) -> Endpoint:
    from kiln.factory.server import endpoint_for

    endpoint = endpoint_for(root)
    where = f"Temporal {endpoint.address}"
    if endpoint.ui:
        where += f", UI {endpoint.ui}"
    err_console.print(f"factory: {where}", markup=False, highlight=False)
    return endpoint


def _results_table(results: list[ReconcileResult], *, dry_run: bool) -> Table:
    table = Table(title="factory pass" + (" (dry run: nothing written)" if dry_run else ""))
    for column in ("image", "outcome", "pull request" if not dry_run else "would open", "why"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.image,
            r.outcome,
            "\n".join(r.prs) or "—",
            "\n".join([r.reason, *r.steps]).strip(),
        )
    return table


@factory_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="one pass over the catalog")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="write nothing; print what would be opened")
    ] = False,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="only these images (repeatable)")
    ] = None,
    workers: Annotated[int, typer.Option(help="steps run at once in this pass")] = 1,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="remedies to try: bump, vex, backport, research (repeatable)"),
    ] = None,
    compat: Annotated[
        bool,
        typer.Option(
            "--compat",
            help="a bump also runs the compat apps that use the image on its new build "
            "(minutes per app; default: $KILN_FACTORY_COMPAT, off)",
        ),
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Reconcile every image of the catalog once (an in-process worker runs the steps)."""
    if not once:
        raise InputError("kiln factory run needs --once; `kiln factory watch` runs continuously")
    if workers < 1:
        raise InputError(f"--workers {workers}: at least 1")
    from kiln.factory.activities import FactoryActivities
    from kiln.factory.engine import catalog_images, connect, run_pass
    from kiln.factory.model import STEPS
    from kiln.factory.state import FactoryState
    from kiln.factory.wiring import production_steps

    remedies = list(dict.fromkeys(only or STEPS))
    if set(remedies) - set(STEPS):
        bad = ", ".join(sorted(set(remedies) - set(STEPS)))
        raise InputError(f"--only {bad}: use {', '.join(STEPS)}")
    root = _root(catalog)
    known = catalog_images(root)
    images = list(dict.fromkeys(image or known))
    unknown = sorted(set(images) - set(known))
    if unknown:
        raise InputError(f"not in {root / 'images'}: {', '.join(unknown)}")
    endpoint = _endpoint(root)
    steps = production_steps(root, compat=True if compat else None)
    activities = FactoryActivities(steps, FactoryState(root))

    async def main() -> list[ReconcileResult]:
        client = await connect(endpoint)
        return await run_pass(
            client,
            activities,
            images,
            dry_run=dry_run,
            workers=workers,
            steps=remedies,
            # a watch schedule firing meanwhile finds its poll served by this worker too
            watch=None if dry_run else _watch_activities(root),
        )

    results = asyncio.run(main())
    console.print(_results_table(results, dry_run=dry_run))


@factory_app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="steps this worker runs at once")] = 1,
    catalog: CatalogOption = None,
) -> None:
    """Serve the kiln-factory task queue until interrupted (run N of them on N machines)."""
    from kiln.factory.activities import FactoryActivities
    from kiln.factory.engine import connect, make_worker
    from kiln.factory.state import FactoryState
    from kiln.factory.wiring import production_steps

    root = _root(catalog)
    endpoint = _endpoint(root)
    activities = FactoryActivities(production_steps(root), FactoryState(root))
    watcher = _watch_activities(root)  # the polls the watch schedules start

    async def main() -> None:
        client = await connect(endpoint)
        running, executor = make_worker(
            client, activities, max_concurrent=concurrency, watch=watcher
        )
        try:
            err_console.print("factory worker: serving kiln-factory (Ctrl-C stops)")
            await running.run()
        finally:
            executor.shutdown(wait=True)

    asyncio.run(main())


def _watch_activities(root: Path) -> WatchActivities:
    """The watch's activities over the checkout (poll state in .kiln/factory/watch/)."""
    from kiln.factory.server import state_dir
    from kiln.factory.watch import CatalogWatcher, WatchActivities

    return WatchActivities(CatalogWatcher(root), state_dir(root) / "factory" / "watch")


@factory_app.command("watch")
def watch(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="archive, catalog, feeds (repeatable; default: all)"),
    ] = None,
    interval: Annotated[
        list[str] | None,
        typer.Option(
            "--interval",
            help="seconds between two polls: SECONDS for every source, SOURCE=SECONDS for "
            "one (repeatable, e.g. --interval 300 --interval feeds=3600; default 300)",
        ),
    ] = None,
    rounds: Annotated[
        int,
        typer.Option(help="poll each source N times now, wait for the reconciles, and exit"),
    ] = 0,
    detach: Annotated[
        bool, typer.Option("--detach", help="set the schedules and exit (workers poll)")
    ] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="delete the sources' watch schedules and exit")
    ] = False,
    concurrency: Annotated[int, typer.Option(help="steps this process runs at once")] = 1,
    catalog: CatalogOption = None,
) -> None:
    """Watch the archive, the feeds and the catalog's commits: a Temporal Schedule per
    source fires a poll every interval and the images that changed are reconciled. This
    process is also a worker (until Ctrl-C; --rounds N: N polls now; --detach: none)."""
    from kiln.factory.activities import FactoryActivities
    from kiln.factory.engine import (
        connect,
        make_worker,
        poll_now,
        schedule_watch,
        settle,
        stop_watch,
    )
    from kiln.factory.state import FactoryState
    from kiln.factory.watch import SOURCES, parse_intervals
    from kiln.factory.wiring import production_steps

    sources = list(dict.fromkeys(source or SOURCES))
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise InputError(f"--source {', '.join(unknown)}: use {', '.join(SOURCES)}")
    if rounds < 0:
        raise InputError(f"--rounds {rounds}: 0 or more")
    if stop and (rounds or detach or interval):
        raise InputError("--stop deletes the schedules: it takes no --rounds, --detach, --interval")
    if detach and rounds:
        raise InputError("--detach and --rounds: choose one (--rounds waits for the polls)")
    intervals = parse_intervals(interval or [], sources)
    root = _root(catalog)
    endpoint = _endpoint(root)

    if stop:

        async def stopping() -> list[str]:
            return await stop_watch(await connect(endpoint), sources)

        deleted = asyncio.run(stopping())
        gone = ", ".join(f"watch-{s}" for s in deleted) or "none existed"
        console.print(f"factory watch: deleted the schedules: {gone}", markup=False)
        return

    activities = FactoryActivities(production_steps(root), FactoryState(root))
    watcher = _watch_activities(root)

    async def main() -> None:
        client = await connect(endpoint)
        done = await schedule_watch(client, intervals)
        every = ", ".join(f"{s} every {intervals[s]:g}s ({done[s]})" for s in sources)
        err_console.print(f"factory watch: schedules {every}", markup=False, highlight=False)
        if detach:
            return
        running, executor = make_worker(
            client, activities, max_concurrent=concurrency, watch=watcher
        )
        try:
            async with running:
                if not rounds:
                    err_console.print("factory watch: serving kiln-factory (Ctrl-C stops)")
                    await asyncio.Event().wait()
                for n in range(rounds):
                    for s in sources:
                        polled = await poll_now(client, s)
                        what = ("failed: " if polled.failed else "") + polled.describe()
                        console.print(f"poll {n + 1} of {s}: {what}", markup=False)
                await settle(client)  # the reconciles the polls enqueued
        finally:
            executor.shutdown(wait=True)

    asyncio.run(main())


def status_table(found: FactoryStatus) -> Table:
    """The status of every image as a table (what ``kiln factory status`` prints)."""
    table = Table(title="kiln factory status")
    for column in ("image", "state", "last result", "generation", "finished", "detail"):
        table.add_column(column, no_wrap=column in ("image", "state", "last result"))
    for row in found.images:
        last = row.last
        detail = row.phase
        if row.letter is not None:
            detail = f"{row.letter.step}: {row.letter.reason.splitlines()[0][:160]}"
        elif last is not None:
            detail = "\n".join(last.prs or last.steps[:1] or [last.reason])[:240]
        table.add_row(
            row.image,
            row.state,
            last.outcome if last else "—",
            last.generation[:12] if last else "—",
            last.finished[:16].replace("T", " ") if last else "—",
            detail,
        )
    table.caption = (
        f"{found.count('queued')} queued, {found.count('in flight')} in flight, "
        f"{found.count('dead-lettered')} dead-lettered"
    )
    return table


def _short_time(iso: str) -> str:
    return iso[5:19].replace("T", " ") or "—"  # MM-DD HH:MM:SS (UTC)


def watch_table(schedules: list[WatchStatus]) -> Table:
    """The watch schedules as a table (under ``kiln factory status``)."""
    table = Table(title="watch schedules")
    for column in ("source", "every", "next run", "last poll", "last result"):
        table.add_column(column, no_wrap=column != "last result")
    for w in schedules:
        result = w.last_result or "—"
        if w.last_detail:
            result += f": {w.last_detail.splitlines()[0][:200]}"
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    w.source,
                    f"{w.interval_s:g}s" + (" (paused)" if w.paused else ""),
                    _short_time(w.next_run),
                    _short_time(w.last_run),
                    result,
                )
            )
        )
    table.caption = f"{sum(w.polls for w in schedules)} polls so far; times UTC"
    return table


@factory_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    schedules_only: Annotated[
        bool,
        typer.Option("--schedules", help="only the watch schedules (with --json: a list of them)"),
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Queued, in flight, dead-lettered, the last result of every image, and the watch
    schedules (next run, last poll). With --json: a list with one object per image
    (--schedules: one per watch schedule)."""
    from kiln.factory.engine import catalog_images, connect, watch_status
    from kiln.factory.engine import status as factory_status
    from kiln.factory.state import FactoryState

    root = _root(catalog)
    endpoint = _endpoint(root)

    async def main() -> tuple[FactoryStatus, list[WatchStatus]]:
        client = await connect(endpoint)
        found = await factory_status(client, FactoryState(root), catalog_images(root))
        return found, await watch_status(client)

    found, schedules = asyncio.run(main())
    if as_json:
        rows = schedules if schedules_only else found.images
        typer.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    if not schedules_only:
        console.print(status_table(found))
    if schedules:
        console.print(watch_table(schedules))
    else:
        console.print("no watch schedules (`kiln factory watch` sets them)", markup=False)


PR_KEYS = ("id", "image", "kind", "branch", "cves_fixed", "checks", "state")


@factory_app.command("prs")
def prs(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    catalog: CatalogOption = None,
) -> None:
    """The pull requests the factory opened (id, image, kind, branch, CVEs fixed, checks, state)."""
    from kiln.factory.wiring import production_forge

    pulls = production_forge(_root(catalog)).list()
    if as_json:
        typer.echo(json.dumps([pr.to_dict() for pr in pulls], indent=2))
        return
    table = Table(title="kiln pull requests")
    for column in (*PR_KEYS, "title"):
        table.add_column(column.replace("_", " "), no_wrap=column in ("branch", "state"))
    for pr in pulls:
        # every cell is plain text: a title or check name from a forge must not be read
        # as rich markup ("[bold]" ...)
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    str(pr.id),
                    pr.image,
                    pr.kind,
                    pr.branch,
                    ", ".join(pr.cves_fixed) or "—",
                    checks_summary(pr.checks),
                    pr.state,
                    pr.title,
                )
            )
        )
    console.print(table)


def checks_summary(checks: Mapping[str, str]) -> str:
    """``3/4 pass (skipped: package tests)``: how many passed, then each other outcome
    with its checks (a skipped step is not a failure, and says so)."""
    passed = sum(1 for status in checks.values() if status == "pass")
    others: dict[str, list[str]] = {}
    for name, status in sorted(checks.items()):
        if status != "pass":
            others.setdefault("failing" if status == "fail" else status, []).append(name)
    summary = f"{passed}/{len(checks)} pass"
    if others:
        summary += " (" + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(others.items())) + ")"
    return summary


@factory_app.command("retry")
def retry(
    image: Annotated[str, typer.Argument(help="the dead-lettered image to try again")],
    catalog: CatalogOption = None,
) -> None:
    """Release an image's dead letter and enqueue it again (a worker picks it up)."""
    from kiln.factory.engine import connect
    from kiln.factory.engine import retry as factory_retry
    from kiln.factory.state import FactoryState

    root = _root(catalog)
    endpoint = _endpoint(root)

    async def main() -> None:
        client = await connect(endpoint)
        letter = await factory_retry(client, FactoryState(root), image)
        if letter is None:
            console.print(f"{image}: had no dead letter; enqueued it anyway", markup=False)
        else:
            console.print(
                f"{image}: released the dead letter ({letter.step}: "
                f"{letter.reason.splitlines()[0][:160]}) and enqueued it",
                markup=False,
            )

    asyncio.run(main())
