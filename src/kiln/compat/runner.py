"""Run the compatibility suite: each app built and run on the stand-ins, then on kiln.

For every app: the stand-ins its FROM lines name are built (``standins``), the FROM
lines are swapped to kiln images (``swap``) which are copied into the store
(``kilnimages``), both Dockerfiles are built with buildah and run with podman, and the
responses (``probe``) or outputs are compared. Sizes come from the store, CVE counts
from ``kiln scan`` of each app image. Nothing is hidden: a failed step keeps its log
tail in the result.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kiln.compat.containers import Store, check_tools, run
from kiln.compat.kilnimages import KilnImport, import_layout, kiln_build_argv, stage_specs
from kiln.compat.model import App, StandinCatalog, StandinSpec
from kiln.compat.probe import Observation, free_port, observe_all, wait_until_answering
from kiln.compat.standins import StandinBuild, ensure_standin
from kiln.compat.swap import KILN_PREFIX, SwappedDockerfile, official_refs, swap_from_lines
from kiln.debian.distro import get_distro
from kiln.debian.sources import Mirrors
from kiln.errors import InputError
from kiln.fileio import atomic_write, sha256_file
from kiln.migrate import Catalog, DirectoryContext
from kiln.upstream.npm import NpmIndex

BUILD_TIMEOUT = 1800.0
BUILD_KEY_LABEL = "io.kiln.compat.build-key"
SCAN_TIMEOUT = 600.0
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Side:
    """One side of an app (``before`` on stand-ins, ``after`` on kiln)."""

    name: str  # before / after
    image: str  # the app image's name in the store
    build_ok: bool = False
    run_ok: bool = False
    size: int | None = None
    packages: int | None = None  # installed packages kiln scan found (Debian + language)
    cves: int | None = None
    cve_note: str = ""
    cve_source: str = ""  # the Debian feed the count came from (debian-tracker, debian-archive)
    build_seconds: float = 0.0
    build_cached: bool = False  # the store had an image built from the same inputs
    port: int | None = None
    observations: tuple[Observation, ...] = ()
    exit_code: int | None = None
    output: str = ""
    problem: str = ""  # what failed, in one line
    log_tail: str = ""  # the failing step's output tail


@dataclass(frozen=True)
class AppResult:
    name: str
    description: str
    swaps: tuple[str, ...]
    before: Side
    after: Side
    identical: bool
    differences: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.before.run_ok and self.after.run_ok and self.identical


@dataclass(frozen=True)
class SuiteResult:
    apps: tuple[AppResult, ...]
    standins: tuple[StandinBuild, ...]
    kiln_images: tuple[KilnImport, ...]
    seconds: float
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(a.ok for a in self.apps)


@dataclass(frozen=True)
class SuiteConfig:
    """Where things are and what to reuse."""

    work: Path  # cache dir: store, logs, kiln layouts, downloads
    images_dir: Path  # kiln's catalog (images/)
    layouts: Path | None = None  # prebuilt kiln layouts (skip kiln build)
    arch: str = "amd64"
    rebuild_standins: bool = False
    scan: bool = True
    db: str | None = None
    parallel_standins: int = 3
    parallel_apps: int = 2

    @property
    def store(self) -> Store:
        return Store.under(self.work)

    @property
    def logs(self) -> Path:
        return self.work / "logs"


def run_suite(
    apps: Sequence[App],
    standins: StandinCatalog,
    catalog: Catalog,
    mirrors: Mirrors,
    config: SuiteConfig,
    *,
    progress: Progress = lambda _: None,
) -> SuiteResult:
    """Build, run and compare every app; never raise for an app's own failure."""
    start = time.monotonic()
    check_tools()
    config.work.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%dT%H%M%S")
    logs = config.logs / run_id
    logs.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    swapped = {
        app.name: swap_from_lines(
            app.dockerfile.read_text(encoding="utf-8"),
            catalog,
            standins,
            path=str(app.dockerfile),
            context=DirectoryContext(app.dockerfile.parent),
        )
        for app in apps
    }
    needed = _needed_standins(apps, standins)
    images_needed = sorted({s.image for sw in swapped.values() for s in sw.swaps if s.image})
    # The two sides' base images are independent: kiln builds while mmdebstrap runs.
    with ThreadPoolExecutor(max_workers=1) as kiln_side:
        kiln_built = kiln_side.submit(_kiln_layouts, images_needed, config, logs, progress)
        progress(f"stand-ins: {', '.join(s.name for s in needed)}")
        builds = _build_standins(
            needed, standins, mirrors, config=config, logs=logs, progress=progress
        )
        layout_dir, build_problem = kiln_built.result()
    for build in builds:
        if not build.ok:
            problems.append(f"stand-in {build.name} failed to build:\n{build.log_tail}")
    if build_problem:
        problems.append(build_problem)
    imports = _import_kiln(swapped, layout_dir, config.store, logs)
    for imp in imports:
        if not imp.ok:
            problems.append(f"kiln image {imp.layout} could not be imported:\n{imp.log_tail}")

    # Apps are independent (own images, containers, ports, logs): two at a time keeps the
    # two cores busy while one side waits on PyPI, npm or the Debian mirror.
    with ThreadPoolExecutor(max_workers=max(1, config.parallel_apps)) as pool:
        results = list(
            pool.map(lambda app: _run_app(app, swapped[app.name], config, logs, progress), apps)
        )
    # images replaced by this run's builds (same names, new inputs) are dangling now: with
    # vfs each is a full copy of its rootfs, so free them rather than let the cache grow
    run(config.store.podman("image", "prune", "--force"), timeout=600, log=logs / "prune.log")
    return SuiteResult(
        tuple(results), tuple(builds), tuple(imports), time.monotonic() - start, tuple(problems)
    )


def _needed_standins(apps: Sequence[App], standins: StandinCatalog) -> list[StandinSpec]:
    needed: dict[str, StandinSpec] = {}
    for app in apps:
        for ref in official_refs(app.dockerfile.read_text(encoding="utf-8"), str(app.dockerfile)):
            spec = standins.for_ref(ref)
            if spec is None:
                raise InputError(
                    f"app {app.name}: no stand-in for {ref}",
                    hint="add it to the refs of a stand-in in compat/standins.yaml",
                )
            needed[spec.name] = spec
    return list(needed.values())


def _build_standins(
    needed: list[StandinSpec],
    catalog: StandinCatalog,
    mirrors: Mirrors,
    *,
    config: SuiteConfig,
    logs: Path,
    progress: Progress,
) -> list[StandinBuild]:
    downloads = config.work / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for spec in needed:
        for ref in spec.npm:
            _fetch_npm(ref, downloads)
    distro = get_distro(catalog.distro)
    with ThreadPoolExecutor(max_workers=max(1, config.parallel_standins)) as pool:
        futures = [
            pool.submit(
                ensure_standin,
                spec,
                store=config.store,
                distro=distro,
                mirrors=mirrors,
                downloads=downloads,
                log=logs / f"standin-{spec.name}.log",
                rebuild=config.rebuild_standins,
            )
            for spec in needed
        ]
        for done in as_completed(futures):
            build = done.result()
            progress(
                f"stand-in {build.name}: {'cached' if build.cached else 'built'}"
                f" in {build.seconds:.0f}s" + ("" if build.ok else " FAILED")
            )
        return [f.result() for f in futures]


def _fetch_npm(ref: str, downloads: Path) -> None:
    """``npm pack``-style tarball of ``name@version`` from the configured npm registry."""
    name, _, version = ref.rpartition("@")
    target = downloads / f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"
    if target.exists():
        return
    index = NpmIndex.from_environment()
    data = index.tarball(index.lock(name, version))
    atomic_write(target, data)


def _kiln_layouts(
    images: list[str], config: SuiteConfig, logs: Path, progress: Progress
) -> tuple[Path, str]:
    """``kiln build`` the specs of ``images`` (the swapped FROM lines' images)."""
    if config.layouts is not None:
        return config.layouts, ""
    specs = stage_specs(config.images_dir, images, config.work / "kiln-specs")
    output = config.work / "kiln-out"
    progress(f"kiln build {' '.join(s.stem for s in specs)}")
    result = run(
        kiln_build_argv(specs, output, config.arch),
        timeout=BUILD_TIMEOUT,
        log=logs / "kiln-build.log",
    )
    if not result.ok:
        return output, f"kiln build failed:\n{result.tail()}"
    return output, ""


def _import_kiln(
    swapped: dict[str, SwappedDockerfile], layouts: Path, store: Store, logs: Path
) -> list[KilnImport]:
    wanted: dict[str, str] = {}
    for sw in swapped.values():
        for swap in sw.swaps:
            if swap.layout and swap.replacement:
                wanted.setdefault(swap.replacement, swap.layout)
    return [
        import_layout(layouts / layout, ref, store, log=logs / "kiln-import.log")
        for ref, layout in sorted(wanted.items())
    ]


def _run_app(
    app: App, swapped: SwappedDockerfile, config: SuiteConfig, logs: Path, progress: Progress
) -> AppResult:
    store = config.store
    swaps = tuple(s.describe() for s in swapped.swaps)
    before = _side(app, "before", app.dockerfile, config=config, logs=logs, progress=progress)
    if swapped.unmapped:
        after = Side(
            "after",
            f"localhost/compat/{app.name}:after",
            problem="FROM not swapped: " + "; ".join(s.describe() for s in swapped.unmapped),
        )
    else:
        with tempfile.TemporaryDirectory(prefix=f"compat-{app.name}-") as tmp:
            dockerfile = Path(tmp) / "Dockerfile.kiln"
            dockerfile.write_text(swapped.text, encoding="utf-8")
            after = _side(app, "after", dockerfile, config=config, logs=logs, progress=progress)
    identical, differences = _compare(app, before, after)
    if config.scan:
        before = _scan(before, store, config, logs)
        after = _scan(after, store, config, logs)
    return AppResult(
        app.name, app.declaration.description, swaps, before, after, identical, differences
    )


def _side(
    app: App, name: str, dockerfile: Path, *, config: SuiteConfig, logs: Path, progress: Progress
) -> Side:
    store = config.store
    image = f"localhost/compat/{app.name}:{name}"
    log = logs / f"{app.name}-{name}.log"
    started = time.monotonic()
    key = build_key(app.directory, dockerfile, store)
    cached = store.label(image, BUILD_KEY_LABEL) == key
    if not cached:
        argv = store.build_argv(app.directory, dockerfile, image, labels={BUILD_KEY_LABEL: key})
        built = run(argv, timeout=BUILD_TIMEOUT, log=log)
        if not built.ok:
            progress(f"{app.name} {name}: build FAILED")
            side = Side(name, image, build_seconds=time.monotonic() - started)
            return replace(side, problem="build failed", log_tail=built.tail())
    side = Side(
        name,
        image,
        build_ok=True,
        build_cached=cached,
        build_seconds=time.monotonic() - started,
        size=store.size(image),
    )
    declaration = app.declaration
    container = f"compat-{app.name}-{name}"
    store.remove_container(container)
    try:
        if declaration.output is not None:
            ran = run(store.run_argv(image, container), timeout=declaration.timeout, log=log)
            side = replace(side, exit_code=ran.returncode, output=ran.output)
            problem = _check_output(app, ran.returncode, ran.output)
            if problem:
                side = replace(side, problem=problem, log_tail=ran.tail())
            else:
                side = replace(side, run_ok=True)
        else:
            side = _serve(app, side, container, store=store, log=log)
    finally:
        store.remove_container(container)
    progress(f"{app.name} {name}: {'ok' if side.run_ok else side.problem}")
    return side


def build_key(context: Path, dockerfile: Path, store: Store) -> str:
    """sha256 of a build's inputs: the Dockerfile, the context's files, the base image ids."""
    digest = hashlib.sha256()
    text = dockerfile.read_text(encoding="utf-8")
    digest.update(text.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(f"\0{path.relative_to(context)}\0".encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    for ref in official_refs(text, str(dockerfile)):
        info = store.inspect(ref)
        digest.update(f"\0{ref}={info.get('Id') if info else None}".encode())
    return digest.hexdigest()


def _check_output(app: App, code: int, output: str) -> str:
    expected = app.declaration.output
    if expected is None:
        return "the declaration has no 'output' to check"
    if code != expected.exit_code:
        return f"exit code {code}, expected {expected.exit_code}"
    if expected.output is not None and not re.search(expected.output, output):
        return f"output does not match {expected.output!r}"
    return ""


def _serve(app: App, side: Side, container: str, *, store: Store, log: Path) -> Side:
    declaration = app.declaration
    app_port = declaration.port
    if side.name == "after" and declaration.after is not None and declaration.after.port:
        app_port = declaration.after.port
    if app_port is None:
        return replace(side, problem="the declaration has no 'port' to publish")
    host_port = free_port()
    started = run(
        store.run_argv(side.image, container, publish=(host_port, app_port)), timeout=120, log=log
    )
    if not started.ok:
        return replace(side, problem="container did not start", log_tail=started.tail())

    def alive() -> bool:
        return store.state(container)[0] == "running"

    waited = wait_until_answering(host_port, declaration.timeout, alive=alive)
    if waited is not None:
        logs = store.logs(container)
        _append(log, logs.output)
        return replace(side, port=app_port, problem=waited, log_tail=logs.tail())
    observations = observe_all(host_port, declaration.requests)
    logs = store.logs(container)
    _append(log, logs.output)
    wrong = [
        f"{o.request}: {o.error or o.status} (expected {r.status})"
        for o, r in zip(observations, declaration.requests, strict=True)
        if o.error or o.status != r.status
    ]
    side = replace(side, port=app_port, observations=observations)
    if wrong:
        return replace(side, problem="; ".join(wrong), log_tail=logs.tail())
    return replace(side, run_ok=True)


def _append(log: Path, text: str) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"[container logs]\n{text}\n")


def _compare(app: App, before: Side, after: Side) -> tuple[bool, tuple[str, ...]]:
    if not (before.build_ok and after.build_ok):
        return False, ("not compared: a side did not build",)
    differences: list[str] = []
    if app.declaration.output is not None:
        if before.exit_code != after.exit_code:
            differences.append(f"exit code {before.exit_code} -> {after.exit_code}")
        if before.output != after.output:
            differences.append(_first_difference("output", before.output, after.output))
        return not differences, tuple(differences)
    if len(before.observations) != len(after.observations):
        return False, ("not compared: a side did not answer every request",)
    for b, a in zip(before.observations, after.observations, strict=True):
        if b.comparable() == a.comparable():
            continue
        if b.status != a.status or b.error != a.error:
            differences.append(
                f"{b.request}: status {b.status or b.error} -> {a.status or a.error}"
            )
        for (header, vb), (_, va) in zip(b.headers, a.headers, strict=True):
            if vb != va:
                differences.append(f"{b.request}: {header} {vb!r} -> {va!r}")
        if b.body != a.body:
            differences.append(_first_difference(f"{b.request}: body", b.body, a.body))
    return not differences, tuple(differences)


def _first_difference(what: str, before: str, after: str) -> str:
    index = next(
        (i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y),
        min(len(before), len(after)),
    )
    lo = max(0, index - 30)
    return f"{what} differs at {index}: {before[lo : index + 40]!r} -> {after[lo : index + 40]!r}"


def _scan(side: Side, store: Store, config: SuiteConfig, logs: Path) -> Side:
    """Count packages and findings ``kiln scan`` reports for the app image's rootfs.

    Without Debian Security Tracker data in the database, the Debian CVEs come from the
    ``debian-archive`` feed: it is updated first for the packages of this image (its
    changelog cache makes that cheap after the first image), and the note says so.
    """
    if not side.build_ok:
        return side
    log = logs / f"scan-{side.image.rsplit('/', 1)[-1].replace(':', '-')}.log"
    mounted = run(store.podman("image", "mount", side.image), timeout=SCAN_TIMEOUT, log=log)
    if not mounted.ok:
        return replace(side, cve_note=f"image mount failed: {mounted.tail(3)}")
    rootfs = mounted.output.strip()
    db = ["--db", config.db] if config.db else []
    try:
        report, failed = _scan_report(rootfs, db, log)
        if report is not None and "debian-tracker" not in _sources(report):
            update = _kiln(["db", "update", "--source", "debian-archive", "--image", rootfs, *db])
            _append(log, update.stdout + update.stderr)
            if update.returncode == 0:
                report, failed = _scan_report(rootfs, db, log)
    except subprocess.TimeoutExpired:
        return replace(side, cve_note="kiln scan timed out")
    finally:
        run(store.podman("image", "unmount", side.image), timeout=120, log=log)
    if report is None:
        return replace(side, cve_note=failed)
    try:
        total = int(report["summary"]["total"])
        side = replace(side, packages=int(report["package_count"]))
    except (ValueError, KeyError, TypeError):
        return replace(side, cve_note="kiln scan wrote an unexpected report")
    sources = _sources(report)
    if not sources:
        return replace(side, cve_note="the vulnerability database is empty (kiln db update)")
    used = next((s for s in ("debian-tracker", "debian-archive") if s in sources), "")
    return replace(side, cves=total, cve_source=used)


def _kiln(args: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "kiln.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=SCAN_TIMEOUT, check=False)


def _scan_report(rootfs: str, db: list[str], log: Path) -> tuple[dict[str, Any] | None, str]:
    """``kiln scan --format json`` of a root filesystem: (the report, or why there is none)."""
    proc = _kiln(["scan", rootfs, "--format", "json", *db])
    _append(log, proc.stderr)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return None, f"kiln scan failed (exit {proc.returncode})"
    if not isinstance(report, dict):
        return None, f"kiln scan failed (exit {proc.returncode})"
    return report, ""


def _sources(report: dict[str, Any]) -> set[str]:
    """The feeds whose snapshots a scan report says it used."""
    snapshots = report.get("snapshots") or []
    return {s.get("source", "") for s in snapshots if isinstance(s, dict)}


__all__ = ["KILN_PREFIX", "AppResult", "Side", "SuiteConfig", "SuiteResult", "run_suite"]
