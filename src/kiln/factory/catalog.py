"""The real reconcile steps over a catalog checkout (``images/*.yaml`` and their locks).

``observe`` locks the spec against today's verified archive without writing anything
and scans the checked-in lock with kiln's vulnerability database: the generation is
the sha256 of the spec, the fresh lock and the feed snapshots the scan used, so it
changes exactly when one of them does. ``bump`` works on a staged copy of the spec and
lock under ``.kiln/factory/work/`` (the checkout is never touched: the change reaches
it only as a pull request): relock with ``refresh``, build every variant for this
machine's architecture, run the image's own tests in bubblewrap, scan the built
image, and propose the new lock with the evidence. Pull requests go through a
``kiln.forge`` forge; advisory events into ``kiln.vuln.advisories``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import InputError, KilnError, PolicyError, RemoteContentError
from kiln.factory.activities import Beat
from kiln.factory.model import (
    Observation,
    Proposal,
    PrResult,
    ReconcileRequest,
    StepResult,
    valid_key,
)
from kiln.factory.server import state_dir
from kiln.fileio import atomic_write
from kiln.forge.evidence import AgentStep, CheckResult, CveRow, PackageChange, SizeChange

if TYPE_CHECKING:
    from kiln.assemble import BuiltImage
    from kiln.factory.agent import Agent
    from kiln.forge import Forge
    from kiln.inventory.model import InstalledPackage, OsRelease
    from kiln.pipeline import ArchiveAccess, CurrentLock
    from kiln.pipeline.backport import BackportResult, UnstableFix
    from kiln.pipeline.build import BuiltVariant
    from kiln.pipeline.packagecache import PackageBuildCache
    from kiln.pipeline.vexevidence import ComponentVerdict, ImageFiles, Verdict
    from kiln.research.codeabsent import CodeVerdict
    from kiln.resolve.lockfile import Lock, LockedPackage
    from kiln.spec import ImageSpec, LoadedSpec
    from kiln.vuln import ScanResult
    from kiln.vuln.model import Finding

# Heavy modules (assembly, the solver, the database) load inside the steps, so a
# worker that only records or a `kiln factory status` does not import them.
# ruff: noqa: PLC0415

EventSink = Callable[[str, str, str, Mapping[str, str]], None]


def _show(root: Path, branch: str, path: str) -> bytes | None:
    """``path`` as ``branch``'s tip has it in the repository at ``root`` (None: absent)."""
    ref = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if ref.returncode != 0:
        raise InputError(f"{root}: no branch {branch!r} to read the catalog from")
    shown = subprocess.run(
        ["git", "-C", str(root), "cat-file", "blob", f"{ref.stdout.decode().strip()}:{path}"],
        capture_output=True,
        check=False,
    )
    return shown.stdout if shown.returncode == 0 else None


def _host_arch() -> str:
    from kiln.sandbox.unpack import host_arch

    return host_arch()


def _os_release(distro_id: str) -> OsRelease:
    from kiln.debian import get_distro
    from kiln.inventory.model import OsRelease

    distro = get_distro(distro_id)
    return OsRelease.from_parts("debian", distro.version, distro.codename)


def lock_inventory(lock: Lock, variant: str, arch: str) -> list[InstalledPackage]:
    """The packages a lock installs for one variant and arch, as the scanner reads them."""
    from kiln.inventory.model import InstalledPackage, deb_purl

    distro = _os_release(lock.distro)
    return [
        InstalledPackage(
            ecosystem="deb",
            name=p.name,
            version=p.version,
            source_name=p.source,
            source_version=p.source_version,
            arch=p.arch,
            purl=deb_purl(p.name, p.version, p.arch, distro, p.source, p.source_version),
            locations=(f"{lock.image}.lock.json",),
        )
        for p in lock.packages(variant, arch)
    ]


def scan_packages(
    target: str, distro_id: str, packages: Sequence[InstalledPackage], db_url: str | None
) -> ScanResult:
    """Scan ``packages`` with kiln's database (``$KILN_DB`` unless ``db_url``)."""
    from kiln.inventory.model import Inventory
    from kiln.vuln import scan_inventory
    from kiln.vuln.db.scan_source import open_for_scan

    inventory = Inventory(target, _os_release(distro_id), tuple(packages))
    return scan_inventory(inventory, open_for_scan(db_url))


def package_changes(
    old: Iterable[LockedPackage], new: Iterable[LockedPackage]
) -> list[PackageChange]:
    """Packages added, removed or moved between two locks' package sets."""
    before = {(p.name, p.arch): p.version for p in old}
    after = {(p.name, p.arch): p.version for p in new}
    return [
        PackageChange(f"{name}:{arch}", before.get((name, arch)), after.get((name, arch)))
        for name, arch in sorted(set(before) | set(after))
        if before.get((name, arch)) != after.get((name, arch))
    ]


def _image_size(image: BuiltImage, arch: str) -> int | None:
    for one in image.images:
        if one.arch == arch:
            return one.config.size + sum(layer.size for layer in one.layers)
    return None


def _backport_proposal(
    request: ReconcileRequest,
    seen: Observation,
    origin: str,
    suite: str,
    result: BackportResult,
) -> Proposal:
    """A finished backport as a pull request's proposal, with the backport's own evidence
    (``kiln.pipeline.backport.evidence_for``: scans before/after, checks, patch origins)."""
    from kiln.pipeline.backport import evidence_for

    evidence = evidence_for(result, generation=seen.generation)
    return Proposal(
        image=request.image,
        kind="backport",
        generation=seen.generation,
        title=f"{request.image}: backport {', '.join(result.cves)} fix for {result.source} "
        f"from Debian {suite} ({result.kiln_version})",
        files=Proposal.encode(result.files),
        cves_before=list(evidence.cves_before),
        cves_after=list(evidence.cves_after),
        packages=list(evidence.packages),
        tests=list(evidence.tests),
        digest=evidence.provenance_digest or "",
        patches=list(evidence.patches),
        notes=[origin, *evidence.notes],
    )


def vex_proposal(
    image: str,
    generation: str,
    *,
    labels: Sequence[str],
    held: Sequence[Verdict],
    leads: Sequence[str],
    before: Sequence[CveRow],
    timestamp: str | None = None,
) -> Proposal:
    """The ``vex`` pull request of the verdicts that hold: ``vex/<image>.openvex.json``,
    the CVE rows before (the lock's scan) and after (none: the statements apply), the
    evidence as notes, and one ``false-positive-determination`` per CVE and image label
    (``base``, ``base-dev``: what ``kiln publish`` attests per variant) to record once
    the pull request is open."""
    from datetime import UTC, datetime

    from kiln.factory.model import Determination
    from kiln.pipeline.vexevidence import vex_document

    stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = vex_document(held, author="kiln factory", timestamp=stamp)
    covered = sorted({v.cve for v in held})
    determinations = [
        Determination(
            image=label,
            vuln_id=v.cve,
            package=v.installed[0] if v.installed else "",
            justification=v.justification or "",
            impact_statement=v.impact_statement()[:8000],
            evidence="\n".join(v.evidence())[:8000],
        )
        for v in held
        for label in labels
    ]
    notes = [
        f"{v.cve} ({v.source}): not_affected, {v.justification}. Fix: {v.fix_origin}. "
        + " | ".join(v.evidence())
        for v in held
    ]
    return Proposal(
        image=image,
        kind="vex",
        generation=generation,
        title=f"{image}: VEX not_affected for {', '.join(covered)}",
        files=Proposal.encode({f"vex/{image}.openvex.json": document}),
        cves_before=list(before),
        cves_after=[],
        notes=[*notes, *(f"no statement: {lead}" for lead in leads)][:200],
        determinations=determinations,
    )


class _Heard:
    """The build's listener: keeps why the lock was rewritten, heartbeats per variant."""

    def __init__(self, beat: Beat) -> None:
        self.beat = beat
        self.written: str | None = None

    def lock_settled(self, item: LoadedSpec, current: CurrentLock) -> None:
        self.written = current.written
        self.beat(f"{item.spec.name}: lock {current.written or 'unchanged'}")

    def variant_built(self, built: BuiltVariant) -> None:
        self.beat(f"built {built.label}")


@dataclass
class _VexContext:
    """The image's file lists, read once per vex step (every installed .deb, verified)."""

    files: ImageFiles
    arch: str
    sizes: dict[str, int] = field(default_factory=dict)  # source -> upstream bytes (Sources)

    @classmethod
    def read(cls, steps: CatalogSteps, lock: Lock, spec: ImageSpec) -> _VexContext:
        from kiln.pipeline.vexevidence import image_files

        arch = steps.archs[0]
        extra = [p.path for p in spec.paths]
        for variant in spec.variants.values():
            extra.extend(p.path for p in variant.paths)
        return cls(image_files(lock, steps._repo(), arch=arch, extra=extra), arch)

    def decide(
        self, steps: CatalogSteps, image: str, source: str, cve: str, fix: UnstableFix
    ) -> ComponentVerdict:
        """``decide_component`` for one unstable fix, with the source's binaries read from
        the release's signed Sources (``Binary:``) and Packages indexes."""
        from kiln.debian import get_distro
        from kiln.debian.source_index import load_sources
        from kiln.pipeline.vexevidence import decide_component, installed_strings, source_binaries

        repo = steps._repo()
        lock = self.files.lock
        distro = get_distro(lock.distro)
        universe = load_sources(
            distro, cache=repo.cache, fetcher=repo.fetcher, mirrors=repo.mirrors,
            now=repo.clock(), keyring=repo.keyring, names=[source],
        )  # fmt: skip
        found = universe.versions(source)
        if not found:
            raise InputError(f"{source} is not a source package of {distro.codename}")
        self.sizes[source] = sum(f.size for f in found[0].upstream_files)
        binaries = source_binaries(
            source, found[0].binaries, repo, distro=lock.distro, arch=self.arch
        )
        installed = {
            name: files
            for name, files in self.files.installed.items()
            if self.files.sources.get(name) == source
        }
        return decide_component(
            image=image, source=source, cve=cve, fix_origin=fix.origin,
            diffs=[(p.name, p.text) for p in fix.patches], source_files=binaries.files,
            installed=installed, image_files=self.files.files(),
            strings=installed_strings(self.files, source, repo, arch=self.arch),
            installed_anywhere=self.files.everywhere, binaries=binaries.versions,
        )  # fmt: skip

    def absent(  # noqa: PLR0917 (one fix's parts)
        self,
        steps: CatalogSteps,
        image: str,
        source: str,
        cve: str,
        fix: UnstableFix,
        seen: Observation,
    ) -> CodeVerdict:
        """``decide_absent`` on the image's own source (the locked version, unpacked in
        the sandbox under the work directory; sources over ``backport_max_mb`` are not
        unpacked: no statement)."""
        from kiln.research.codeabsent import CodeVerdict, decide_absent, unpacked_source

        version = self.files.versions.get(source, "")
        installed = sorted(n for n, s in self.files.sources.items() if s == source)
        work = state_dir(steps.root) / "factory" / "work" / f"{image}-{seen.generation[:16]}-vex"
        size = self.sizes.get(source, 0)
        if not version or size > steps.backport_max_mb * 1_000_000:
            why = "not in the lock" if not version else f"over {steps.backport_max_mb} MB"
            return CodeVerdict(
                image, source, cve, fix.origin, statement=False, tree=source,
                reason=f"the source is {why}: not unpacked to look for the fix's code",
            )  # fmt: skip
        tree, name = unpacked_source(
            source, version, work / source, steps._repo(), distro=self.files.lock.distro
        )
        return decide_absent(
            image=image, source=source, cve=cve, fix_origin=fix.origin,
            diffs=[(p.name, p.text) for p in fix.patches], tree=tree, tree_name=name,
            installed=installed,
        )  # fmt: skip


def remedy_lists(active: Sequence[Finding]) -> tuple[list[str], list[str], list[str]]:
    """The findings a reconcile plans from, by what can remedy them: fixable ids (a fixed
    version exists: bump), ``source CVE`` pairs fixed only in Debian unstable (vex,
    backport, research), and ``source CVE`` pairs of Debian packages fixed nowhere yet
    (status open: research alone, which backports into a Debian source package; a PyPI
    or npm package's open advisory has no Debian source to patch)."""
    from kiln.vuln import FindingStatus

    def pairs(status: FindingStatus) -> list[str]:
        return sorted(
            {
                f"{f.source_name or f.package_name} {f.id}"
                for f in active
                if f.status is status and f.package_ecosystem == "deb"
            }
        )

    fixable = sorted({f.id for f in active if f.fix_available})
    return fixable, pairs(FindingStatus.FIX_IN_UNSTABLE), pairs(FindingStatus.OPEN)


@dataclass
class CatalogSteps:
    """``Steps`` over the checkout at ``root`` (see the module docstring)."""

    root: Path
    forge: Forge | None = None  # None: `dry_run` only (open_pr refuses otherwise)
    events: EventSink | None = None
    db_url: str | None = None  # the vulnerability database (None: $KILN_DB / the cache)
    repository: Callable[[], ArchiveAccess] | None = None
    archs: tuple[str, ...] = field(default_factory=lambda: (_host_arch(),))
    backport_attempts: int = 3  # unstable fixes looked at per generation
    backport_max_mb: int = 20  # larger sources (gcc, openssl) are left to research
    vex_attempts: int = 8  # unstable fixes read for VEX evidence per generation
    research_max: int = 3  # CVEs researched per generation ($KILN_FACTORY_RESEARCH_MAX wins)
    base: str = "main"  # the branch pull requests go to; specs and locks are read from it
    agent: Agent | None = None  # the optional self-healing agent (kiln.factory.agent)
    compat: bool = False  # run the compat apps that use a bumped image (compatcheck)

    def _repo(self) -> ArchiveAccess:
        if self.repository is not None:
            return self.repository()
        from kiln.pipeline import ArchiveAccess

        return ArchiveAccess.from_environment()

    def stage(self, image: str, dest: Path) -> Path:
        """``images/<image>.yaml`` and its lock as the base branch's tip has them, copied
        into ``dest/images/`` (the checkout's working tree is never read: pull requests go
        to the base branch, and a relocked working copy must not hide a stale lock)."""
        if not valid_key(image):
            raise InputError(f"{image!r} is not an image name (images/NAME.yaml)")
        target = dest / "images"
        target.mkdir(parents=True, exist_ok=True)
        for suffix in (".yaml", ".lock.json"):
            path = f"images/{image}{suffix}"
            data = _show(self.root, self.base, path)
            if data is None and suffix == ".yaml":
                raise InputError(f"{self.root}: branch {self.base} has no {path}")
            if data is not None:
                atomic_write(target / f"{image}{suffix}", data)
            else:
                (target / f"{image}{suffix}").unlink(missing_ok=True)
        return target / f"{image}.yaml"

    def _load(self, image: str) -> LoadedSpec:
        from kiln.spec import load_spec

        seen = state_dir(self.root) / "factory" / "observed" / image
        return load_spec(self.stage(image, seen))

    def _scan_lock(self, lock: Lock, target: str) -> ScanResult:
        """Scan what every variant of ``lock`` installs (on this machine's architecture,
        else the variant's first): a CVE only the -dev image carries is the image's too
        (``python-dev`` is published beside ``python``), so it is reconciled as well."""
        packages: dict[tuple[str, str, str, str], InstalledPackage] = {}
        for variant, per_arch in sorted(lock.variants.items()):
            arch = self.archs[0] if self.archs[0] in per_arch else next(iter(per_arch))
            for package in lock_inventory(lock, variant, arch):
                packages.setdefault(package.key, package)
        return scan_packages(target, lock.distro, list(packages.values()), self.db_url)

    def observe(self, request: ReconcileRequest) -> Observation:
        """Fresh lock (nothing written) + scan of the checked-in lock -> the generation."""
        from kiln.pipeline import lock_spec
        from kiln.resolve.lockfile import LockError, diff_locks, lock_drift, read_lock

        loaded = self._load(request.image)
        found: Lock | None
        try:
            found = read_lock(loaded.lock_path)
        except LockError:
            if loaded.lock_path.exists():
                raise
            found = None
        belongs = found is not None and found.spec_sha256 == loaded.sha256
        repo = self._repo()
        pins = found.npm if found is not None and belongs else None
        fresh = lock_spec(loaded, repo.snapshot_for(loaded.spec), npm=pins).lock
        changes = diff_locks(found, fresh) if found is not None else ["no lock yet"]
        drift = lock_drift(found, fresh, path=str(loaded.lock_path)) if found else None
        scan = self._scan_lock(found or fresh, f"{request.image} (checked-in lock)")
        feed_state = ",".join(sorted(f"{s.source}={s.digest}" for s in scan.snapshots))
        generation = hashlib.sha256(
            b"\0".join([loaded.sha256.encode(), fresh.to_json(), feed_state.encode()])
        ).hexdigest()
        fixable, unstable, unfixed = remedy_lists(scan.active)
        summary = drift.summary() if drift else ("; ".join(changes[:1]) if changes else "")
        return Observation(
            image=request.image,
            generation=generation,
            behind=bool(changes),
            drift=summary,
            changed=changes[:200],
            open_cves=fixable,
            unstable_cves=unstable,
            unfixed_cves=unfixed,
            feed_state=hashlib.sha256(feed_state.encode()).hexdigest(),
        )

    def _work(self, image: str, generation: str) -> Path:
        work = state_dir(self.root) / "factory" / "work" / f"{image}-{generation[:16]}"
        if work.exists():
            shutil.rmtree(work)  # an earlier attempt's leftovers (a killed worker)
        work.mkdir(parents=True)
        return work

    def bump(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """Relock a staged copy, build, test and scan it: the new lock as a proposal. When
        the tests fail and the agent is configured, it may repair the staged files."""
        from kiln.pipeline.backport import cve_rows
        from kiln.resolve.lockfile import LockError, read_lock

        original = self._load(request.image)
        work = self._work(request.image, seen.generation)
        spec_path = self.stage(request.image, work)
        try:
            old: Lock | None = read_lock(original.lock_path)
        except LockError:
            if original.lock_path.exists():
                raise
            old = None
        beat("relocking and building")
        listener = _Heard(beat)
        built = self._build(spec_path, work, listener)
        if listener.written is None:
            return StepResult("bump", "nothing", "the archive resolves to the checked-in lock")
        written = listener.written
        tests = self._test(built, beat)
        agent: list[AgentStep] = []
        files: dict[str, bytes | None] = {}
        if any(t.status != "pass" for t in tests):
            built, tests, agent, files = self._repair(request, seen, work, tests, beat)
        compat = self._compat(request.image, work, beat) if self.compat else []
        new = read_lock(spec_path.with_name(f"{request.image}.lock.json"))
        files[f"images/{request.image}.lock.json"] = new.to_json()
        beat("scanning")
        arch = self.archs[0]
        before = self._scan_lock(old, f"{request.image} before") if old else None
        after = self._scan_built(built["runtime"], arch, new.distro)
        sizes = [
            SizeChange(
                f"linux/{arch} (.deb payload)",
                sum(p.size for p in old.packages("runtime", arch)) if old else None,
                sum(p.size for p in new.packages("runtime", arch)),
            ),
            SizeChange(f"linux/{arch} (image)", None, _image_size(built["runtime"], arch)),
        ]
        changed = package_changes(old.all_packages() if old else (), new.all_packages())
        proposal = Proposal(
            image=request.image,
            kind="bump",
            generation=seen.generation,
            title=f"{request.image}: {written}",
            files=Proposal.encode(files),
            cves_before=list(cve_rows(before.active)) if before else [],
            cves_after=list(cve_rows(after.active)),
            packages=changed,
            sizes=sizes,
            tests=[CheckResult("build", "pass", built["runtime"].index_digest), *tests],
            compat=compat,
            digest=built["runtime"].index_digest,
            agent=agent,
            notes=[f"relocked: {written}", f"why now: {request.reason}"]
            + (
                [f"compat: no app of compat/ uses {request.image}"]
                if self.compat and not compat
                else []
            ),
        )
        return StepResult("bump", "proposed", written, proposal)

    def _build(self, spec_path: Path, work: Path, listener: _Heard) -> dict[str, BuiltImage]:
        """Relock (refresh) and build every variant of the staged spec for ``archs``."""
        from kiln.pipeline.build import BuildOptions, build_spec
        from kiln.spec import load_spec

        options = BuildOptions(output=work / "out", archs=self.archs, refresh=True)
        variants = build_spec(load_spec(spec_path), self._repo(), options, listener=listener)
        return {b.variant: b.image for b in variants}

    def _repair(
        self,
        request: ReconcileRequest,
        seen: Observation,
        work: Path,
        tests: list[CheckResult],
        beat: Beat,
    ) -> tuple[dict[str, BuiltImage], list[CheckResult], list[AgentStep], dict[str, bytes | None]]:
        """Failing tests after the bump: the agent's repair of the staged files (rebuilt
        and retested by its ``rerun_step``), or the ``PolicyError`` naming each failure."""
        from kiln.factory.agent import Failure, RerunResult

        def lines(checks: list[CheckResult]) -> list[str]:
            return [
                f"{t.name}: {t.status} {t.detail}".strip() for t in checks if t.status != "pass"
            ]

        failed = PolicyError(
            f"{request.image}: the image's tests fail after the bump", details=lines(tests)
        )
        if self.agent is None:
            raise failed
        last: dict[str, Any] = {}

        def rerun() -> RerunResult:
            try:
                built = self._build(work / "images" / f"{request.image}.yaml", work, _Heard(beat))
                checks = self._test(built, beat)
            except KilnError as exc:
                return RerunResult(False, exc.diagnostics())
            last.update(built=built, tests=checks)
            bad = lines(checks)
            return RerunResult(not bad, "\n".join(bad) or "every test passed")

        log = "\n".join(failed.details)
        outcome = self.agent.repair(
            Failure(request.image, "bump", seen.generation, "test", log), work, rerun
        )
        if not outcome.fixed or not last:
            raise PolicyError(
                f"{failed.message}; the agent did not repair it: {outcome.reason}",
                details=failed.details,
            )
        changed: dict[str, bytes | None] = dict(outcome.changed)
        return last["built"], last["tests"], list(outcome.evidence()), changed

    def _compat(self, image: str, work: Path, beat: Beat) -> list[CheckResult]:
        """The compat apps that use ``image``, on the layouts the bump built (a failing
        app is a ``PolicyError`` naming it); the suite's cache is kiln's."""
        import threading

        from kiln.debian.cache import default_cache_root
        from kiln.factory.compatcheck import run_compat

        beat("compat")
        step = threading.get_ident()

        def progress(line: str) -> None:
            # the suite reports from its own threads too; a heartbeat needs the
            # activity's (the side thread keeps beating with the last note meanwhile)
            if threading.get_ident() == step:
                beat(f"compat: {line}")

        return run_compat(
            image,
            work / "out",
            self.root,
            work=default_cache_root() / "compat",
            arch=self.archs[0],
            progress=progress,
        )

    def _test(self, built: Mapping[str, BuiltImage], beat: Beat) -> list[CheckResult]:
        """Each built variant's own tests in bubblewrap (CTRF written into its layout)."""
        from kiln.pipeline.imagetest import check_layout

        checks: list[CheckResult] = []
        for variant, image in built.items():
            beat(f"testing {variant}")
            check = check_layout(image.layout, arch=self.archs[0], tag=None)
            checks.extend(
                CheckResult(
                    f"{variant}: {o.test.name}",
                    "pass" if o.status == "passed" else "fail",
                    "" if o.status == "passed" else o.message[:300],
                )
                for o in check.outcomes
            )
        return checks

    def _scan_built(self, image: BuiltImage, arch: str, distro_id: str) -> ScanResult:
        from kiln.inventory import load_target

        inventory = load_target(image.layout, f"linux/{arch}")
        debs = [p for p in inventory.packages if p.ecosystem == "deb"]
        return scan_packages(str(image.layout), distro_id, debs, self.db_url)

    def backport(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """A CVE fixed only in unstable: unstable's DEP-3 patch as a kiln recipe, built in
        the sandbox with the package's own tests, the image rebuilt from kiln's repository,
        tested and scanned (``kiln.pipeline.backport``). The first fix that is a patch
        becomes the proposal; the others wait for the next generation."""
        from kiln.pipeline.backport import BeatProgress, backport_from_unstable, find_unstable_fix

        progress = BeatProgress(beat)
        leads: list[str] = []
        candidates, too_big = self._backport_candidates(request.image, seen.unstable_cves)
        if too_big:
            leads.append(
                f"source larger than {self.backport_max_mb} MB, left to research: {too_big}"
            )
        for source, cve in candidates[: self.backport_attempts]:
            # a candidate that cannot be backported (the mirror lacks unstable's files, the
            # patch does not apply, the package's tests fail) is a lead with its reason,
            # and the next one is tried; a transport error fails the step (retried)
            try:
                fix = find_unstable_fix(source, cve, progress=progress)
                if fix is None:
                    leads.append(f"{cve} ({source}): unstable's changelog no longer names a fix")
                    continue
                if fix.kind != "patch" or not fix.patches:
                    leads.append(f"{cve} ({source}): {fix.note or fix.kind}")
                    continue
                work = self._work(request.image, f"{seen.generation[:16]}-{source}-{cve}")
                self.stage(request.image, work / "catalog")
                result = backport_from_unstable(
                    fix, catalog_root=work / "catalog", work=work, image=request.image,
                    install=False, progress=progress, package_cache=self.package_builds(),
                    db=self.db_url,
                )  # fmt: skip
            except (InputError, PolicyError, RemoteContentError) as exc:
                leads.append(f"{cve} ({source}): {type(exc).__name__}: {exc}")
                continue
            return StepResult("backport", "proposed", fix.origin, _backport_proposal(
                request, seen, fix.origin, fix.suite, result
            ))  # fmt: skip
        reason = "; ".join(leads) or "no CVE fixed only in unstable"
        return StepResult("backport", "nothing", reason[:2000])

    def package_builds(self) -> PackageBuildCache:
        """Backport package builds shared by every image of this checkout (one build per
        fix: the second image needing lz4's patch takes the first one's packages)."""
        from kiln.pipeline.packagecache import PackageBuildCache

        cache = PackageBuildCache(state_dir(self.root) / "factory" / "packages")
        cache.prune()  # entries no reconcile took for 30 days, dead workers' .partial dirs
        return cache

    def _backport_candidates(
        self, image: str, unstable: Sequence[str]
    ) -> tuple[list[tuple[str, str]], str]:
        """(source, CVE) pairs to backport, smallest source first (a rebuild's cost grows
        with it: gcc or openssl with their test suites take hours on two cores), and the
        sources over ``backport_max_mb`` that are left out."""
        from kiln.debian import get_distro
        from kiln.debian.source_index import load_sources

        pairs = [tuple(e.split(" ", 1)) for e in unstable if " " in e]
        names = sorted({p[0] for p in pairs})
        if not names:
            return [], ""
        repo = self._repo()
        distro = get_distro(self._load(image).spec.distro)
        universe = load_sources(
            distro, cache=repo.cache, fetcher=repo.fetcher, mirrors=repo.mirrors,
            now=repo.clock(), keyring=repo.keyring, names=names,
        )  # fmt: skip
        size: dict[str, int] = {}
        for name in names:
            found = universe.versions(name)
            if found:
                size[name] = sum(f.size for f in found[0].upstream_files)
        limit = self.backport_max_mb * 1_000_000
        big = sorted(n for n in names if size.get(n, limit + 1) > limit)
        kept = sorted(
            ((p[0], p[1]) for p in pairs if p[0] not in big), key=lambda p: (size[p[0]], p)
        )
        return kept, ", ".join(big)

    def vex(self, request: ReconcileRequest, seen: Observation, beat: Beat) -> StepResult:
        """Remedy (c): a CVE only unstable fixes whose fix changes only programs the image
        does not have gets a ``not_affected`` / ``component_not_present`` statement
        (``kiln.pipeline.vexevidence``), else, when the code the fix changes is nowhere in
        the image's own Debian source, ``vulnerable_code_not_present``
        (``kiln.research.codeabsent``); both with the evidence, as a ``vex`` pull request
        adding ``vex/<image>.openvex.json``. When in doubt, no statement."""
        from kiln.pipeline.backport import BeatProgress, find_unstable_fix
        from kiln.resolve.lockfile import read_lock

        pairs = [tuple(e.split(" ", 1)) for e in seen.unstable_cves if " " in e]
        if not pairs:
            return StepResult("vex", "nothing", "no CVE fixed only in unstable")
        loaded = self._load(request.image)
        lock = read_lock(loaded.lock_path)
        progress = BeatProgress(beat)
        leads: list[str] = []
        held: list[Verdict] = []
        context: _VexContext | None = None
        for source, cve in sorted(pairs)[: self.vex_attempts]:
            lead = ""
            try:
                fix = find_unstable_fix(source, cve, progress=progress)
                if fix is None or fix.kind != "patch" or not fix.patches:
                    why = "no fix in unstable" if fix is None else fix.note or fix.kind
                    leads.append(f"{cve} ({source}): no diff to read ({why})")
                    continue
                if context is None:
                    beat("reading the image's file lists")
                    context = _VexContext.read(self, lock, loaded.spec)
                verdict: Verdict = context.decide(self, request.image, source, cve, fix)
                if not verdict.statement:
                    lead = f"{cve} ({source}): no component_not_present: {verdict.reason}"
                    verdict = context.absent(self, request.image, source, cve, fix, seen)
                    if not verdict.statement:
                        leads.append(lead)
            except KilnError as exc:
                # VEX is a proof or nothing: a CVE whose evidence cannot be read (even for
                # a transient mirror error) gets no statement, and the backport goes on
                leads.extend([lead] if lead else [])
                leads.append(f"{cve} ({source}): {type(exc).__name__}: {exc}")
                continue
            if verdict.statement:
                held.append(verdict)
            else:
                leads.append(f"{cve} ({source}): no statement: {verdict.reason}")
        if not held:
            reason = "; ".join(leads) or "no CVE fixed only in unstable"
            return StepResult("vex", "nothing", reason[:2000])
        from kiln.pipeline.backport import cve_rows

        covered = {v.cve for v in held}
        scan = self._scan_lock(lock, f"{request.image} (checked-in lock)")
        proposal = vex_proposal(
            request.image,
            seen.generation,
            labels=sorted({loaded.spec.label(variant) for variant in lock.variants}),
            held=held,
            leads=leads,
            before=[r for r in cve_rows(scan.active) if r.id in covered],
        )
        reason = "; ".join(f"{v.cve}: {v.reason}" for v in held)
        return StepResult("vex", "proposed", reason[:2000], proposal)

    def research(
        self, request: ReconcileRequest, seen: Observation, vex: Proposal | None, beat: Beat
    ) -> StepResult:
        """The CVEs the other remedies left open, handed to the research agent
        (``kiln.factory.research_step``: upstream's fix found and ranked; not affected:
        joins ``vex``; else backported as a ``research`` pull request)."""
        from kiln.factory.research_step import catalog_research

        return catalog_research(self, request, seen, vex, beat)

    def open_pr(self, proposal: Proposal, dry_run: bool) -> PrResult:
        """The proposal as a pull request through the forge (``dry_run``: what it would be)."""
        from kiln.factory.prs import open_change

        return open_change(self.forge, self.root, proposal, dry_run=dry_run)

    def record(self, image: str, vuln_id: str, kind: str, data: dict[str, str]) -> None:
        """Append an advisory event (to the sink; none configured: Temporal's history only)."""
        if self.events is not None:
            self.events(image, vuln_id, kind, data)
