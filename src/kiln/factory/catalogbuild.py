"""The catalog at scale: generate the family specs, build and test each image on Temporal.

``kiln catalog build`` plans the catalog (``kiln.spec.family``: the tables in
``catalog/``, packages checked against each release's verified Packages index, an
entry a release lacks skipped with the reason), writes the generated specs under the
checkout's ``.kiln/catalog/specs/<release>/`` and runs one ``CatalogWorkflow`` that
fans out one ``catalog_build_image`` activity per spec. Each activity relocks the
generated spec against today's archive (the lock lives beside it, in the state
directory: no lock is checked in), builds both variants through ``build_spec`` (the
shared .deb cache and the layout cache of ``$KILN_CACHE``), checks each image's ELF
closure on its unpacked rootfs, runs its generated tests in bubblewrap, and records
the outcome atomically in ``.kiln/catalog/results/<name>.json`` (what ``kiln catalog
status`` reads). A worker killed mid-catalog loses only the activities in flight:
the workflow is durable, the next ``kiln catalog build`` with the same selection
finds it (same workflow id) and its worker takes the remaining activities over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError

from kiln.errors import InputError, KilnError
from kiln.factory.outcomecache import OutcomeCache, key_of_tests, scan_key
from kiln.fileio import atomic_write, memory_scratch

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from kiln.pipeline import ArchiveAccess, CurrentLock
    from kiln.pipeline.build import BuiltVariant
    from kiln.spec import LoadedSpec
    from kiln.spec.family import CatalogPlan, GeneratedImage, PackageExists

# Builds, the sandbox and the archive load inside the activity, so that the workflow
# sandbox and `kiln catalog status` do not import them.
# ruff: noqa: PLC0415

TASK_QUEUE = "kiln-catalog"
CATALOG_DIR = "catalog"
STATE = "catalog"
_MAX_RESULT_BYTES = 1024 * 1024
HEARTBEAT_EVERY = 2.0
#: What ``make test`` builds and tests (tests/catalogscale/test_sample.py, bench/catalog.py
#: --sample): 20 small images over the three families and both releases, runtime
#: variants mostly (spec name -> variants).
SAMPLE: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("curl", "zstd", "tree", "socat", "file", "bc", "less", "perl", "gawk-runtime",
         "beanstalkd", "nats-server", "jq-debian12"),
        ("runtime",),
    ),
    **dict.fromkeys(("jq", "memcached", "lua", "memcached-debian12"), ("runtime", "dev")),
}  # fmt: skip
#: What ``kiln catalog build --arm64`` builds and tests: the checkout's hand-written
#: images and the generated ones whose table entry lists arm64 in ``archs``, each for
#: these platforms (runtime variants; arm64's programs run through qemu-user).
ARM64_ARCHS = ("amd64", "arm64")
HAND_WRITTEN = "hand-written"


def state_root(root: Path) -> Path:
    """``<checkout>/.kiln/catalog`` (the factory's state directory, git-ignored)."""
    from kiln.factory.server import state_dir

    directory = state_dir(root) / STATE
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def package_checker(archive: ArchiveAccess, release: str, arch: str = "amd64") -> PackageExists:
    """Whether ``release``'s verified Packages index (all suites) has a package or a
    provider of that name."""
    from kiln.debian.distro import get_distro

    universe = archive.snapshot(get_distro(release), [arch]).universe(arch)

    def exists(name: str) -> bool:
        return universe.get(name) is not None or bool(universe.providers(name))

    return exists


def hand_written(root: Path) -> list[str]:
    """The names of the checkout's hand-written specs (``images/*.yaml``)."""
    directory = root / "images"
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def plan(
    root: Path,
    exists: Mapping[str, PackageExists] | None,
    *,
    family: str | None = None,
    names: Sequence[str] = (),
    release: str | None = None,
    network_tests: bool = True,
) -> CatalogPlan:
    """The catalog's generated specs (narrowed to a family, names, a release) and skips."""
    from kiln.spec.family import CatalogPlan, image_name, load_families, plan_catalog

    families = load_families(root / CATALOG_DIR, reserved=hand_written(root))
    full = plan_catalog(families, exists, network_tests=network_tests, only_family=family)
    wanted = set(names)
    images = [
        i
        for i in full.images
        if (not wanted or i.name in wanted) and (release is None or i.release == release)
    ]
    skipped = [
        s
        for s in full.skipped
        if (not wanted or image_name(s.entry, s.release) in wanted)
        and (release is None or s.release == release)
    ]
    unknown = sorted(
        wanted
        - {i.name for i in full.images}
        - {image_name(s.entry, s.release) for s in full.skipped}
    )
    if unknown:
        raise InputError(
            f"no catalog image called {', '.join(unknown)}",
            hint="names are spec names: curl (Debian 13), curl-debian12 (Debian 12)",
        )
    return CatalogPlan(tuple(images), tuple(skipped))


def spec_path(directory: Path, image: GeneratedImage) -> Path:
    """Where a generated spec is written: ``<directory>/<release>/<name>.yaml``."""
    return directory / image.release / f"{image.name}.yaml"


def write_specs(directory: Path, images: Iterable[GeneratedImage]) -> list[Path]:
    """Write each generated spec (atomically; unchanged bytes are not rewritten)."""
    from kiln.spec.family import render_spec

    written = []
    for image in images:
        path = spec_path(directory, image)
        _write_if_changed(path, render_spec(image))
        written.append(path)
    return written


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` atomically unless ``path`` holds it already (its time then stays)."""
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)


def arm64_images(found: CatalogPlan) -> list[GeneratedImage]:
    """The planned images whose spec builds arm64 (their entry lists it)."""
    return [i for i in found.images if "arm64" in i.spec.get("archs", ())]


def hand_written_jobs(
    root: Path,
    state: Path,
    *,
    archs: Sequence[str],
    run_tests: bool = True,
    retest: bool = False,
) -> list[ImageJob]:
    """One job per hand-written spec (``images/*.yaml``, runtime variant, ``archs``):
    the spec and its lock are copied under ``state/specs/hand-written/`` first, so a
    relock against today's archive never rewrites the checked-in lock."""
    from kiln.spec import load_spec

    directory = state / "specs" / HAND_WRITTEN
    jobs = []
    for name in hand_written(root):
        source = root / "images" / f"{name}.yaml"
        spec = load_spec(source).spec
        for path in (source, source.with_suffix(".lock.json")):
            if path.is_file():
                _write_if_changed(directory / path.name, path.read_bytes())
        jobs.append(
            ImageJob(
                name,
                HAND_WRITTEN,
                spec.distro,
                str(directory / source.name),
                str(state / "out" / HAND_WRITTEN),
                str(state / "results"),
                run_tests,
                ["runtime"],
                retest,
                list(archs),
            )
        )
    return jobs


# ------------------------------------------------------------------ activity data


def image_label(name: str, variants: Sequence[str]) -> str:
    """The image a one-variant job builds (``curl``, ``curl-dev``); else the spec name."""
    if len(variants) == 1 and variants[0] != "runtime":
        return f"{name}-{variants[0]}"
    return name


@dataclass
class ImageJob:
    """One generated spec to build and test."""

    name: str
    family: str
    release: str
    spec: str  # path of the generated spec
    output: str  # where layouts go
    results: str  # where the outcome is recorded
    run_tests: bool = True
    variants: list[str] = field(default_factory=list)  # empty: runtime and dev
    retest: bool = False  # run the tests even when a passing outcome is remembered
    #: the platforms built and tested (another than this machine's runs through qemu-user)
    archs: list[str] = field(default_factory=lambda: ["amd64"])

    @property
    def label(self) -> str:
        """The image this job builds (``curl``, ``curl-dev``), or the spec for both."""
        return image_label(self.name, self.variants)


@dataclass
class VariantOutcome:
    """One image (a variant of a spec): built, its size, its tests and ELF closure."""

    label: str
    variant: str
    built: bool = False
    layout_cache_hit: bool = False
    size: int = 0  # compressed bytes of its layers and config
    layers: list[str] = field(default_factory=list)  # layer digests, base first
    layer_sizes: list[int] = field(default_factory=list)  # compressed bytes of each
    layers_reused: int = 0  # layers restored from the layer cache, not compressed again
    cves: int | None = None  # distinct vulnerabilities kiln scan finds (None: not scanned)
    cves_fixable: int | None = None  # of those, the ones with a fixed version to upgrade to
    scan: str = ""  # why it was not scanned, or the database snapshots it was scanned with
    tests_passed: int = 0
    tests_failed: int = 0
    closure_programs: int = 0
    failures: list[str] = field(default_factory=list)
    tests_cached: bool = False  # the closure and tests: a remembered passing outcome
    archs: list[str] = field(default_factory=list)  # the platforms tested
    scan_cached: bool = False  # the scan: remembered for this image and database


@dataclass
class ImageOutcome:
    """What one activity did for one spec (both variants)."""

    name: str
    family: str
    release: str
    spec: str
    error: str = ""
    seconds: float = 0.0
    debs: int = 0
    debs_cached: int = 0
    bytes_downloaded: int = 0
    variants: list[VariantOutcome] = field(default_factory=list)
    finished: float = 0.0  # unix time
    requested: list[str] = field(default_factory=list)  # the job's variants (empty: both)
    worker: str = ""  # pid@host of the worker process that built it

    @property
    def ok(self) -> bool:
        """Built, tested and closed: no error and no failure in any variant."""
        return not self.error and all(v.built and not v.failures for v in self.variants)


@dataclass
class CatalogRequest:
    """The workflow's input: the images to build, at most ``workers`` at once."""

    jobs: list[ImageJob]
    workers: int = 1
    #: a worker killed mid-image stops heartbeating: after this long the image is retried
    #: on another worker (the heartbeat comes every HEARTBEAT_EVERY s while it builds)
    heartbeat_timeout_s: float = 120.0


# ------------------------------------------------------------------ the activity


def _image_size(built: BuiltVariant) -> int:
    """Compressed bytes of the image's layers and config (what a pull downloads)."""
    return sum(i.config.size + sum(layer.size for layer in i.layers) for i in built.image.images)


class _Observer:
    """A build listener that counts the lock's .debs already in the cache before fetch."""

    def __init__(self, archive: ArchiveAccess, outcome: ImageOutcome) -> None:
        self.archive = archive
        self.outcome = outcome
        self.built: list[BuiltVariant] = []

    def lock_settled(self, item: LoadedSpec, current: CurrentLock) -> None:
        del item
        seen: set[str] = set()
        for package in current.lock.all_packages():
            if package.sha256 in seen:
                continue
            seen.add(package.sha256)
            self.outcome.debs += 1
            if self.archive.cache.find_blob(package.sha256, size=package.size):
                self.outcome.debs_cached += 1
            else:
                self.outcome.bytes_downloaded += package.size

    def variant_built(self, built: BuiltVariant) -> None:
        self.built.append(built)


def _layout_keys(cache_root: Path) -> set[str]:
    return {p.name for p in cache_root.iterdir()} if cache_root.is_dir() else set()


def _cache_entry_of(cache_root: Path, built: BuiltVariant) -> str | None:
    """The layout-cache entry a layout was restored from or stored to: the one whose
    copy of the image index blob is the same file (blobs are hard-linked both ways)."""
    hexdigest = built.image.index_digest.split(":", 1)[-1]
    try:
        inode = (built.image.layout / "blobs" / "sha256" / hexdigest).stat().st_ino
    except OSError:
        return None
    for entry in _layout_keys(cache_root):
        blob = cache_root / entry / "layout" / "blobs" / "sha256" / hexdigest
        try:
            if blob.stat().st_ino == inode:
                return entry
        except OSError:
            continue
    return None


def _test_variant(
    built: BuiltVariant, outcome: VariantOutcome, *, run_tests: bool, arch: str | None = None
) -> None:
    """Unpack the image's ``arch`` platform (default: this machine's), check its ELF
    closure, run its tests (bubblewrap; another architecture's programs through
    qemu-user). Another platform's failures are prefixed with it (``arm64: ...``)."""
    from kiln.sandbox import remove_rootfs, resolve_image, tests_of, unpack_image
    from kiln.sandbox import run_tests as run
    from kiln.sandbox.elfclosure import check_closure
    from kiln.sandbox.runner import failure_text
    from kiln.sandbox.unpack import host_arch

    arch = arch or host_arch()
    where = "" if arch == host_arch() else f"{arch}: "
    layout = built.image.layout
    scratch = Path(tempfile.mkdtemp(prefix=f"{layout.name}.catalog-test-"))
    try:
        unpacked = unpack_image(
            resolve_image(layout, tag=built.image.tag, arch=arch), scratch / "rootfs"
        )
        closure = check_closure(unpacked.rootfs)
        outcome.closure_programs += closure.programs
        outcome.failures += [f"{where}ELF closure: {p}" for p in closure.problems[:20]]
        if len(closure.problems) > 20:
            outcome.failures.append(
                f"{where}ELF closure: {len(closure.problems) - 20} more problems"
            )
        if not run_tests:
            return
        for result in run(unpacked, tests_of(unpacked)):
            if result.status == "passed":
                outcome.tests_passed += 1
            else:
                outcome.tests_failed += 1
                outcome.failures.append(where + failure_text(result))
    finally:
        remove_rootfs(scratch)


_TESTED = ("tests_passed", "tests_failed", "closure_programs", "failures")
_SCANNED = ("cves", "cves_fixable", "scan")


def _archive_state(archive: ArchiveAccess, loaded: LoadedSpec) -> list[str] | None:
    """The InRelease sha256s the spec resolved against (None: unknown, do not remember)."""
    try:
        return [r.inrelease_sha256 for r in archive.snapshot_for(loaded.spec).releases]
    except KilnError:
        return None


def _test_remembered(
    built: BuiltVariant,
    outcome: VariantOutcome,
    job: ImageJob,
    remembered: OutcomeCache,
    archive_state: list[str] | None,
) -> None:
    """Test every platform of the job (``_test_variant``), or take the passing outcome of
    the same image, platform, tests, archive and kiln (``kiln.factory.outcomecache``); a
    new passing outcome is remembered. The counts add up over the platforms."""
    reused = []
    for arch in job.archs:
        one = VariantOutcome(outcome.label, outcome.variant)
        key = None
        if archive_state is not None:
            key = key_of_tests(
                built.image.index_digest, arch, network=job.run_tests, releases=archive_state
            )
        known = remembered.get(key) if key is not None and not job.retest else None
        hit = known is not None and _restore(one, known, _TESTED) and not one.failures
        if not hit:
            one = VariantOutcome(outcome.label, outcome.variant)
            _test_variant(built, one, run_tests=job.run_tests, arch=arch)
            if key is not None and job.run_tests and not one.failures:
                remembered.put(key, {name: getattr(one, name) for name in _TESTED})
        reused.append(hit)
        outcome.archs.append(arch)
        outcome.tests_passed += one.tests_passed
        outcome.tests_failed += one.tests_failed
        outcome.closure_programs += one.closure_programs
        outcome.failures += one.failures
    outcome.tests_cached = bool(reused) and all(reused)


def _scan_remembered(
    built: BuiltVariant, outcome: VariantOutcome, remembered: OutcomeCache
) -> None:
    """``_scan_variant``, or its remembered result against the same database file."""
    from kiln.vuln.db.read import default_db_url

    key = scan_key(built.image.index_digest, default_db_url())
    known = remembered.get(key) if key is not None else None
    if known is not None and _restore(outcome, known, _SCANNED):
        outcome.scan_cached = True
        return
    _scan_variant(built, outcome)
    if key is not None and outcome.cves is not None:
        remembered.put(key, {name: getattr(outcome, name) for name in _SCANNED})


def _restore(outcome: VariantOutcome, known: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Set ``names`` from a remembered entry if each has the field's type (else False,
    nothing set: a damaged entry is a miss)."""
    fresh = VariantOutcome(outcome.label, outcome.variant)
    values = {}
    for name in names:
        value, default = known.get(name), getattr(fresh, name)
        if name == "failures":
            ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
        elif name in ("cves", "cves_fixable"):
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        else:
            ok = isinstance(value, type(default)) and not isinstance(value, bool)
        if not ok:
            return False
        values[name] = value
    for name, value in values.items():
        setattr(outcome, name, value)
    return True


def _scan_variant(built: BuiltVariant, outcome: VariantOutcome) -> None:
    """Scan the image as ``kiln scan LAYOUT`` does, against kiln's vulnerability database
    (``$KILN_DB``, else ``vuln.db`` in ``$KILN_CACHE``; no network), and count the
    distinct vulnerabilities still open and those a fixed version resolves. A missing or
    never-updated database leaves the counts unknown (None), saying why: a zero from an
    empty database would be a lie."""
    from kiln.pipeline.scan import scan_target
    from kiln.vuln.db.read import default_db_url

    url = default_db_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        outcome.scan = f"not scanned: no vulnerability database at {url} (kiln db update)"
        return
    try:
        result = scan_target(str(built.image.layout), db=url)
    except KilnError as exc:
        outcome.scan = f"not scanned: {exc.message}"
        return
    if not result.snapshots:
        outcome.scan = "not scanned: the vulnerability database holds no feed (kiln db update)"
        return
    active = result.active
    outcome.cves = len({f.id for f in active})
    outcome.cves_fixable = len({f.id for f in active if f.fix_available})
    outcome.scan = "scanned with " + ", ".join(
        sorted({f"{s.source} {s.created_at[:16]}" for s in result.snapshots})
    )


_ARCHIVES: dict[str, ArchiveAccess] = {}


def _archive() -> ArchiveAccess:
    """One ArchiveAccess per worker process and cache root (snapshots load once)."""
    import os

    from kiln.pipeline import ArchiveAccess

    key = os.environ.get("KILN_CACHE", "")
    if key not in _ARCHIVES:
        _ARCHIVES[key] = ArchiveAccess.from_environment()
    return _ARCHIVES[key]


@dataclass
class _Scratch:
    """The process's memory scratch and who is using it (activities run in threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    made: bool = False
    directory: Path | None = None
    users: int = 0
    saved: str | None = None


_SCRATCH = _Scratch()


@contextlib.contextmanager
def _memory_scratch_in_use() -> Iterator[None]:
    """While images build: temporary files in memory when there is room
    (``kiln.fileio.memory_scratch``, made once per process): unpacking each image to test
    it and the root its maintainer scripts run in create and delete tens of thousands of
    files per image. ``tempfile``'s directory is the process's, so it is set while at
    least one build runs and given back after the last one (a test process that builds
    an image in-process must not keep its temporary files in a root-only directory)."""
    with _SCRATCH.lock:
        if not _SCRATCH.made:
            _SCRATCH.directory, _SCRATCH.made = memory_scratch(), True
        if _SCRATCH.users == 0 and _SCRATCH.directory is not None:
            _SCRATCH.saved, tempfile.tempdir = tempfile.tempdir, str(_SCRATCH.directory)
        _SCRATCH.users += 1
    try:
        yield
    finally:
        with _SCRATCH.lock:
            _SCRATCH.users -= 1
            if _SCRATCH.users == 0 and _SCRATCH.directory is not None:
                tempfile.tempdir = _SCRATCH.saved


def build_and_test(job: ImageJob, *, beat: Callable[[str], None] = lambda _: None) -> ImageOutcome:
    """Lock, build both variants, check and test them; the outcome is recorded (never
    raised: a failing image is a row of the report, the others go on)."""
    with _memory_scratch_in_use():
        return _build_and_test(job, beat)


def _build_and_test(job: ImageJob, beat: Callable[[str], None]) -> ImageOutcome:
    from kiln.pipeline.build import BuildOptions, build_spec
    from kiln.spec import load_spec

    started = time.monotonic()
    outcome = ImageOutcome(
        job.name,
        job.family,
        job.release,
        job.spec,
        requested=job.variants,
        worker=f"{os.getpid()}@{socket.gethostname()}",
    )
    archive = _archive()
    cache_root = archive.cache.root / "layouts"
    remembered = OutcomeCache(archive.cache.root)
    before = _layout_keys(cache_root)
    observer = _Observer(archive, outcome)
    try:
        beat(f"locking and building {job.name}")
        loaded = load_spec(job.spec)
        options = BuildOptions(
            output=Path(job.output),
            archs=tuple(job.archs),
            variants=tuple(job.variants),
            refresh=True,
        )
        built = build_spec(loaded, archive, options, listener=observer)
        archive_state = _archive_state(archive, loaded)
        for each in built:
            variant = VariantOutcome(each.label, each.variant, built=True)
            variant.size = _image_size(each)
            for image in each.image.images:
                variant.layers += [layer.digest for layer in image.layers]
                variant.layer_sizes += [layer.size for layer in image.layers]
                variant.layers_reused += sum(1 for layer in image.layers if layer.reused)
            entry = _cache_entry_of(cache_root, each)
            variant.layout_cache_hit = entry is not None and entry in before
            beat(f"testing {each.label}")
            _test_remembered(each, variant, job, remembered, archive_state)
            beat(f"scanning {each.label}")
            _scan_remembered(each, variant, remembered)
            outcome.variants.append(variant)
    except KilnError as exc:
        outcome.error = exc.message + (f" ({exc.location})" if exc.location else "")
        if exc.details:
            outcome.error += ": " + "; ".join(exc.details[:5])
    except OSError as exc:  # a full disk, a vanished scratch directory
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = round(time.monotonic() - started, 2)
    outcome.finished = time.time()
    record(Path(job.results), outcome)
    return outcome


def record(results: Path, outcome: ImageOutcome) -> None:
    """Write an outcome (atomically: a reader sees the old or the new one).

    An activity of one image writes ``<image>.json`` (``curl.json``, ``curl-dev.json``):
    the images of one spec build in parallel and never write the same file. An outcome
    of both variants (a direct ``build_and_test`` of a whole spec) writes
    ``<spec>.json``, keeping a recorded variant it did not build."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{image_label(outcome.name, outcome.requested)}.json"
    before = _read_outcome(path)
    merged = outcome
    if before is not None and before.spec == outcome.spec:
        built = {v.variant for v in outcome.variants} | set(outcome.requested)
        kept = [v for v in before.variants if v.variant not in built]
        order = {"runtime": 0, "dev": 1}
        variants = sorted([*kept, *outcome.variants], key=lambda v: order.get(v.variant, 2))
        merged = replace(outcome, variants=variants)
    atomic_write(path, json.dumps(asdict(merged), indent=1).encode())


@activity.defn(name="catalog_build_image")
def catalog_build_image(job: ImageJob) -> ImageOutcome:
    """The activity: ``build_and_test`` with a heartbeat while it works."""
    from kiln.factory.activities import heartbeating

    with heartbeating(HEARTBEAT_EVERY) as beat:
        return build_and_test(job, beat=beat)


# ------------------------------------------------------------------ the workflow


@workflow.defn(name="CatalogWorkflow")
class CatalogWorkflow:
    """Fan out one activity per image (at most ``workers`` at once, on whichever worker
    processes serve the task queue); collect outcomes."""

    def __init__(self) -> None:
        self._done = 0
        self._total = 0
        self._failed: list[str] = []

    @workflow.run
    async def run(self, request: CatalogRequest) -> list[ImageOutcome]:
        """Every job's outcome, in the jobs' order."""
        self._total = len(request.jobs)
        gate = asyncio.Semaphore(max(1, request.workers))

        async def one(job: ImageJob) -> ImageOutcome:
            async with gate:
                try:
                    result = await workflow.execute_activity(
                        catalog_build_image,
                        job,
                        start_to_close_timeout=timedelta(hours=2),
                        heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                        retry_policy=RetryPolicy(maximum_attempts=3),
                    )
                except ActivityError as exc:
                    result = ImageOutcome(
                        job.name,
                        job.family,
                        job.release,
                        job.spec,
                        error=str(exc.cause or exc),
                        requested=job.variants,
                    )
            self._done += 1
            if not result.ok:
                self._failed.append(job.label)
            return result

        return list(await asyncio.gather(*(one(job) for job in request.jobs)))

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Done and total images, and which failed so far."""
        return {"done": self._done, "total": self._total, "failed": list(self._failed)}


@dataclass(frozen=True)
class LayerSharing:
    """How much the built images share: layers referenced and distinct, their bytes."""

    images: int
    layers: int
    bytes: int
    distinct: int
    distinct_bytes: int
    reused: int  # layers taken from the layer cache instead of compressed again
    layout_hits: int  # images restored whole from the layout cache


def layer_sharing(outcomes: Iterable[ImageOutcome]) -> LayerSharing:
    """Count the layers of every built image: what a registry or store holds once."""
    sizes: dict[str, int] = {}
    images = layers = total = reused = hits = 0
    for outcome in outcomes:
        for v in outcome.variants:
            if not v.built:
                continue
            images += 1
            layers += len(v.layers)
            total += sum(v.layer_sizes)
            reused += v.layers_reused
            hits += v.layout_cache_hit
            sizes.update(zip(v.layers, v.layer_sizes, strict=False))
    return LayerSharing(images, layers, total, len(sizes), sum(sizes.values()), reused, hits)


def workflow_id(jobs: Sequence[ImageJob]) -> str:
    """One id per selection: rerunning the same selection finds the running workflow."""
    keys = sorted(
        f"{j.spec} {','.join(j.variants)} {j.run_tests} {','.join(j.archs)}" for j in jobs
    )
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    return f"catalog-{digest[:16]}"


async def run_catalog(
    client: Client,
    jobs: Sequence[ImageJob],
    *,
    workers: int = 1,
    on_progress: Callable[[dict[str, Any]], None] = lambda _: None,
    poll: float = 2.0,
    heartbeat_timeout_s: float = 120.0,
    local_slots: int | None = None,
) -> list[ImageOutcome]:
    """Run an in-process worker, start (or find) the catalog workflow, report progress
    until it finishes, return every outcome.

    ``workers``: images built at once (the workflow's gate); ``local_slots``: how many of
    them this process runs (default all; fewer when worker processes started with
    ``start_worker_processes`` serve the queue too)."""
    worker, executor = make_worker(client, workers if local_slots is None else local_slots)
    try:
        async with worker:
            handle = await client.start_workflow(
                CatalogWorkflow.run,
                CatalogRequest(list(jobs), workers, heartbeat_timeout_s),
                id=workflow_id(jobs),
                task_queue=TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
            result = asyncio.ensure_future(handle.result())
            while not result.done():
                await asyncio.wait([result], timeout=poll)
                if not result.done():
                    on_progress(await handle.query(CatalogWorkflow.progress))
            outcomes = result.result()
            on_progress({"done": len(outcomes), "total": len(outcomes), "failed": []})
            return [o if isinstance(o, ImageOutcome) else ImageOutcome(**o) for o in outcomes]
    finally:
        executor.shutdown(wait=True)


def make_worker(client: Client, slots: int) -> tuple[Worker, ThreadPoolExecutor]:
    """A worker of the ``kiln-catalog`` queue running ``slots`` images at once (threads of
    this process: the builds' Python parts share its GIL, so separate worker processes
    scale better), and its executor (shut it down after the worker)."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    executor = ThreadPoolExecutor(max_workers=slots + 2, thread_name_prefix="kiln-catalog")
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[CatalogWorkflow],
        activities=[catalog_build_image],
        activity_executor=executor,
        max_concurrent_activities=slots,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("kiln")
        ),
    )
    return worker, executor


async def serve(client: Client, slots: int, stop: asyncio.Event) -> None:
    """``kiln catalog worker``: serve the queue until ``stop`` is set (in-flight images
    finish first: the worker shuts down gracefully)."""
    worker, executor = make_worker(client, slots)
    try:
        running = asyncio.ensure_future(worker.run())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            await worker.shutdown()
        stopping.cancel()
        await running
    finally:
        executor.shutdown(wait=True)


def start_worker_processes(
    root: Path, address: str, count: int, *, concurrency: int = 1, logs: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` ``kiln catalog worker`` processes on the task queue of ``address``
    (each its own interpreter, so their builds do not share a GIL); their output goes to
    ``<logs>/<n>.log`` (default ``.kiln/catalog/workers/``)."""
    logs = logs or state_root(root) / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KILN_TEMPORAL": address}
    started = []
    for number in range(count):
        with (logs / f"{number + 1}.log").open("wb") as log:
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "kiln.cli.main", "catalog", "worker",
                     "--concurrency", str(concurrency), "--catalog", str(root)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
    return started


def stop_worker_processes(processes: Iterable[subprocess.Popen[bytes]], grace: float = 30) -> None:
    """Ask each started worker to stop (SIGTERM: it finishes what it runs), then kill
    what is still running after ``grace`` seconds."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def jobs_for(
    state: Path,
    images: Iterable[GeneratedImage],
    *,
    run_tests: bool = True,
    variants: Mapping[str, Sequence[str]] | None = None,
    retest: bool = False,
    archs: Sequence[str] = ("amd64",),
) -> list[ImageJob]:
    """Write the specs and make one job per image: per spec, one for each variant
    (runtime, dev; ``variants``: per spec name, only these), built and tested for
    ``archs``. Layouts go under ``state/out``; ``retest``: ignore remembered test
    outcomes."""
    images = list(images)
    paths = write_specs(state / "specs", images)
    return [
        ImageJob(
            i.name,
            i.family,
            i.release,
            str(p),
            str(state / "out" / i.release),
            str(state / "results"),
            run_tests,
            [variant],
            retest,
            list(archs),
        )
        for i, p in zip(images, paths, strict=True)
        for variant in (variants or {}).get(i.name, ()) or ("runtime", "dev")
    ]


# ------------------------------------------------------------------ status


@dataclass
class StatusRow:
    """One image of ``kiln catalog status``."""

    name: str  # the image (curl, curl-dev, curl-debian12)
    spec: str
    family: str
    variant: str
    release: str
    replaces: list[str]
    built: bool = False
    tests: str = "not run"  # "3/3 passed", "2/3 passed", "not run"
    cves: int | None = None  # None: not scanned (see scan)
    cves_fixable: int | None = None
    size: int | None = None
    last_change: str = ""
    error: str = ""
    scan: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _read_outcome(path: Path) -> ImageOutcome | None:
    from kiln.jsonlimits import read_json_file

    try:
        doc = read_json_file(path, max_bytes=_MAX_RESULT_BYTES, what="a catalog result")
        variants = [VariantOutcome(**v) for v in doc.pop("variants")]
        return ImageOutcome(**doc, variants=variants)
    except (InputError, TypeError, KeyError, AttributeError):
        return None  # a damaged record reads as "not built": the next build rewrites it


def status_rows(state: Path, images: Iterable[GeneratedImage]) -> list[StatusRow]:
    """Per image (both variants of each spec): built, tests, size, when, from results."""
    import datetime as dt

    rows = []
    for image in images:
        spec_record = _read_outcome(state / "results" / f"{image.name}.json")
        for variant, label in zip(("runtime", "dev"), image.labels(), strict=True):
            # the image's own record (one activity per image), else the spec's (both)
            outcome = _read_outcome(state / "results" / f"{label}.json")
            if outcome is None or variant not in (outcome.requested or [variant]):
                outcome = spec_record
            by_variant = {v.variant: v for v in outcome.variants} if outcome else {}
            row = StatusRow(
                label,
                str(spec_path(state / "specs", image)),
                image.family,
                variant,
                image.release,
                list(image.replaces),
            )
            seen = by_variant.get(variant)
            if outcome is not None:
                row.last_change = dt.datetime.fromtimestamp(outcome.finished, dt.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                row.error = outcome.error
            if seen is not None:
                row.built = seen.built
                row.size = seen.size
                row.cves, row.cves_fixable, row.scan = seen.cves, seen.cves_fixable, seen.scan
                total = seen.tests_passed + seen.tests_failed
                row.tests = f"{seen.tests_passed}/{total} passed" if total else "none"
                if seen.failures:
                    row.error = seen.failures[0].splitlines()[0]
            rows.append(row)
    return rows


def remove_outputs(state: Path) -> None:
    """Forget built layouts and results (the caches in ``$KILN_CACHE`` stay)."""
    for name in ("out", "results"):
        shutil.rmtree(state / name, ignore_errors=True)


README_BEGIN = "<!-- kiln catalog generate --readme: begin (generated, do not edit) -->"
README_END = "<!-- kiln catalog generate --readme: end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme_table(readme: Path, rows: Sequence[StatusRow], skipped: Sequence[Any]) -> None:
    """Rewrite the README's generated section: every generated image, what it replaces,
    its size when it was built ("not built yet" otherwise; never an estimate)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {readme}: {exc.strerror}") from exc
    built = sum(1 for r in rows if r.built)
    lines = [
        README_BEGIN,
        "",
        f"{len(rows)} images generated from the family tables in `catalog/` "
        f"({len({r.spec for r in rows})} specs, each a runtime and a -dev image; Debian 12 "
        f"ones are NAME-debian12), {built} built and recorded on this checkout by "
        "`kiln catalog build`. Size: compressed layers + config of that build; an image "
        "not built here says so. The hand-written images (`images/`) are not in this "
        "table. See docs/catalog.md.",
        "",
        "| image | family | release | replaces | size |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r.size / 1e6:.1f} MB" if r.built and r.size is not None else "not built yet"
        replaces = ", ".join(f"`{x}`" for x in r.replaces) if r.variant == "runtime" else ""
        lines.append(
            f"| {_cell(r.name)} | {r.family} | {r.release} | {_cell(replaces) or '—'} | {size} |"
        )
    if skipped:
        lines += ["", "Not generated (a package the release lacks):", ""]
        lines += [f"- {_cell(s.reason)}" for s in skipped]
    lines += ["", README_END]
    section = "\n".join(lines)
    if README_BEGIN in text and README_END in text:
        head, _, rest = text.partition(README_BEGIN)
        _, _, tail = rest.partition(README_END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n## Generated catalog images\n\n" + section + "\n"
    atomic_write(readme, text.encode())
