"""Production wiring of source builds: mirrors, cache, Sources, build roots, the sandbox.

The I/O edge that the ``kiln source`` / ``kiln package`` / ``kiln rebuild`` commands
call: it reads the signed indexes through kiln.pipeline.archive's ``ArchiveAccess``, keeps
fetched sources and build roots in ``$KILN_CACHE``, and records what each build was
made from (source digests, recipe digest, build-root digest, hardening flags, outputs)
in a JSON build record next to the .debs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.assemble.harden import ElfAudit
from kiln.attest.bundle import BundleSigner
from kiln.attest.predicates import SPDX_2_3, statement_for
from kiln.debian.deb import read_deb
from kiln.debian.distro import Distro, get_distro
from kiln.debian.source_index import SourcePackage, SourceUniverse, load_sources
from kiln.errors import InputError, PolicyError
from kiln.fileio import atomic_write, sha256_file
from kiln.pipeline.archive import ArchiveAccess
from kiln.progress import NO_PROGRESS, Progress
from kiln.recipes.build import BuildOutput, build_in_sandbox
from kiln.recipes.buildroot import BuildRoot, BuildRootSpec, ensure_build_root
from kiln.recipes.check import RecipeTestResult, audit_debs, run_recipe_tests
from kiln.recipes.fetch import FetchedSource, fetch_source
from kiln.recipes.load import LoadedRecipe, check_base, load_recipe
from kiln.recipes.provenance import package_provenance
from kiln.recipes.sbom import SourceFile, source_spdx
from kiln.recipes.verify import RebuildComparison, compare_debs, debs_by_package
from kiln.sandbox.unpack import host_arch

# Fixed, so the same inputs give the same build-root tarball (mmdebstrap honours it).
ROOT_EPOCH = 1_700_000_000


@dataclass
class SourceBuilder:
    """Fetch, build and verify Debian source packages with kiln's cache and mirrors."""

    archive: ArchiveAccess
    progress: Progress = NO_PROGRESS  # long phases (build root, build, tests) are announced

    @classmethod
    def from_environment(cls, progress: Progress = NO_PROGRESS) -> SourceBuilder:
        return cls(ArchiveAccess.from_environment(), progress)

    @property
    def cache_root(self) -> Path:
        return self.archive.cache.root

    def universe(self, distro: Distro, names: tuple[str, ...]) -> SourceUniverse:
        return load_sources(
            distro,
            cache=self.archive.cache,
            fetcher=self.archive.fetcher,
            mirrors=self.archive.mirrors,
            now=self.archive.clock(),
            keyring=self.archive.keyring,
            names=names,
        )

    def fetch(
        self, distro: Distro, name: str, *, version: str | None = None
    ) -> tuple[FetchedSource, SourceUniverse]:
        with self.progress.phase(f"fetching the source of {name} ({distro.codename})"):
            universe = self.universe(distro, (name,))
            package = self._pick(universe, name, version)
            dest = self.cache_root / "sources" / distro.codename / f"{name}_{package.version}"
            fetched = fetch_source(
                package,
                dest,
                universe=universe,
                cache=self.archive.cache,
                fetcher=self.archive.fetcher,
            )
        return fetched, universe

    def build_root(
        self, distro: Distro, arch: str, package: SourcePackage, profiles: tuple[str, ...]
    ) -> BuildRoot:
        spec = BuildRootSpec(
            distro, arch, package.build_relations(arch_only=False), profiles, ROOT_EPOCH
        )
        log = self.cache_root / "buildroots" / f"{spec.digest}.log"
        return ensure_build_root(
            spec,
            cache_root=self.cache_root,
            suite_urls=self.archive.suite_urls(distro),
            log=log,
            progress=self.progress,
        )

    def build_recipe(
        self,
        recipe_path: Path,
        *,
        arch: str,
        out_dir: Path,
        signer: BundleSigner | None = None,
    ) -> BuildOutput:
        """Check the recipe against Debian, fetch, build in the sandbox, check, record.

        After the build, kiln's ELF audit runs on the .debs and the recipe's tests run
        with the packages unpacked into a fresh root; a failing test raises
        ``RecipeTestError`` (the .debs and the record stay in ``out_dir``). Beside the
        .debs go the provenance and an SPDX SBOM of the source package; with a ``signer``
        both are also signed as Sigstore bundles (``*.sigstore.json``).
        """
        loaded = load_recipe(recipe_path)
        distro = get_distro(loaded.recipe.distro)
        _check_arch(arch)
        universe = self.universe(distro, (loaded.recipe.source,))
        package = check_base(loaded, universe)
        fetched, _ = self.fetch(distro, package.name, version=package.version)
        root = self.build_root(distro, arch, package, loaded.recipe.profile_names)
        building = f"building {package.name} {package.version} in the sandbox (no network)"
        with self.progress.phase(building):
            output = build_in_sandbox(
                fetched,
                root_tarball=root.tarball,
                root_sha256=root.sha256,
                out_dir=out_dir,
                loaded=loaded,
                codename=distro.codename,
            )
        with self.progress.phase(
            f"checking the .debs and running {len(loaded.recipe.tests)} tests"
        ):
            audits = audit_debs(output.debs)
            results = run_recipe_tests(loaded.recipe.tests, output.debs, root_tarball=root.tarball)
        write_build_record(output, fetched, root, loaded, audits=audits, tests=results)
        statement = package_provenance(output, fetched, root, loaded, codename=distro.codename)
        stem = output.log.with_name(f"{output.source}_{output.version}")
        atomic_write(stem.with_name(stem.name + ".provenance.json"), statement.to_json() + b"\n")
        spdx = source_package_sbom(output, fetched, loaded)
        atomic_write(stem.with_name(stem.name + ".spdx.json"), spdx)
        if signer is not None:
            sbom_statement = statement_for(SPDX_2_3, statement.subject, json.loads(spdx))
            for suffix, signed in (
                ("provenance", statement),
                ("spdx", sbom_statement),
            ):
                bundle = signer.sign_statement(signed)
                atomic_write(stem.with_name(f"{stem.name}.{suffix}.sigstore.json"), bundle)
        failed = [r for r in results if not r.passed]
        if failed:
            raise RecipeTestError(
                f"{len(failed)} of {len(results)} recipe tests failed on {output.source} "
                f"{output.version}",
                loaded.locate(("tests",)),
                details=[f"{r.name}: {r.reason}" for r in failed],
            )
        return output

    def rebuild_verify(
        self,
        name: str,
        *,
        arch: str,
        out_dir: Path,
        nocheck: bool = False,
        profiles: tuple[str, ...] = (),
        version: str | None = None,
        timeout: float = 7200.0,
    ) -> RebuildComparison:
        """Rebuild Debian's ``name`` (newest, or ``version``) unpatched and compare .debs.

        ``nocheck`` skips the package's test suite (DEB_BUILD_OPTIONS=nocheck, which
        must not change the binaries of a well-behaved package); ``profiles`` are build
        profiles (e.g. ``nocheck``) for the build root's Build-Depends and the build.
        ``timeout`` bounds the build (seconds). A mismatching pair's diffoscope report,
        when diffoscope is installed, goes to ``out_dir/<package>.diffoscope.txt``.
        """
        _check_arch(arch)
        distro = get_distro("debian-13")
        fetched, _ = self.fetch(distro, name, version=version)
        package = fetched.package
        root = self.build_root(distro, arch, package, profiles)
        with self.progress.phase(f"rebuilding {package.name} {package.version} in the sandbox"):
            output = build_in_sandbox(
                fetched,
                root_tarball=root.tarball,
                root_sha256=root.sha256,
                out_dir=out_dir,
                codename=distro.codename,
                nocheck=nocheck,
                build_profiles=profiles,
                timeout=timeout,
            )
        write_build_record(output, fetched, root, None)
        snapshot = self.archive.snapshot(distro, [arch])
        universe = snapshot.universe(arch)
        built = debs_by_package(list(output.debs))
        theirs_packages = []
        for binary in sorted(built):
            candidate = universe.get(binary)
            if (
                candidate is not None
                and candidate.source == package.name
                and candidate.source_version == package.version
            ):
                theirs_packages.append(candidate)
        # Debug symbols (-dbgsym) live in a separate archive that kiln does not read.
        ours = {p.name: built[p.name] for p in theirs_packages}
        for binary, path in built.items():
            if binary not in ours and not binary.endswith("-dbgsym"):
                ours[binary] = path
        skipped = tuple(sorted(n for n in built if n not in ours))
        with self.progress.phase(f"comparing {len(ours)} .debs with Debian's"):
            paths = self.archive.fetch(distro, theirs_packages)
            theirs = {p.name: path for p, path in zip(theirs_packages, paths, strict=True)}
            comparison = compare_debs(
                package.name, package.version, ours, theirs, skipped=skipped, report_dir=out_dir
            )
        return dataclasses.replace(comparison, build_seconds=output.duration)

    @staticmethod
    def _pick(universe: SourceUniverse, name: str, version: str | None) -> SourcePackage:
        if version is None:
            return universe.newest(name)
        for candidate in universe.versions(name):
            if candidate.version == version:
                return candidate
        known = ", ".join(p.version for p in universe.versions(name)) or "none"
        raise InputError(f"{name} {version} is not in the signed indexes (they have {known})")


def _check_arch(arch: str) -> None:
    native = host_arch()
    if arch != native:
        raise InputError(
            f"cannot build for {arch} on this {native} machine",
            hint="kiln builds natively (no emulation); run the build on an "
            f"{arch} machine or pass --arch {native}",
        )


class RecipeTestError(PolicyError):
    """A recipe's test failed on the packages it built."""


def write_build_record(
    output: BuildOutput,
    fetched: FetchedSource,
    root: BuildRoot,
    loaded: LoadedRecipe | None,
    *,
    audits: Sequence[ElfAudit] = (),
    tests: Sequence[RecipeTestResult] = (),
) -> Path:
    """What the orchestrator observed, for provenance: inputs, environment, outputs."""
    record = {
        "source": output.source,
        "version": output.version,
        "base": {"name": fetched.package.name, "version": fetched.package.version},
        "sourceFiles": dict(sorted(fetched.digests.items())),
        "dscSynthesised": fetched.dsc_synthesised,
        "mirror": fetched.mirror,
        "recipe": _recipe_record(loaded),
        "buildRoot": {
            "sha256": root.sha256,
            "key": root.spec.key_document(),
        },
        "buildflags": output.buildflags,
        "profiles": list(output.profiles),
        "debBuildOptions": output.build_options,
        "outputs": {p.name: sha256_file(p) for p in output.debs},
        "elfAudit": [dataclasses.asdict(a) for a in audits],
        "tests": [{"name": t.name, "passed": t.passed, "reason": t.reason} for t in tests],
    }
    path = output.log.with_name(f"{output.source}_{output.version}.kiln-build.json")
    atomic_write(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def _recipe_record(loaded: LoadedRecipe | None) -> dict[str, object] | None:
    if loaded is None:
        return None
    return {
        "path": str(loaded.path),
        "sha256": loaded.sha256,
        "cves": list(loaded.cves),
        "patches": {p.name: p.sha256 for p in loaded.patches},
    }


def source_package_sbom(output: BuildOutput, fetched: FetchedSource, loaded: LoadedRecipe) -> bytes:
    """The SPDX document of one recipe build: source files, patches, recipe, the .debs."""
    files = [
        SourceFile.of(fetched.directory / f.name, f.name, "from Debian's signed Sources index")
        for f in fetched.package.files
        if (fetched.directory / f.name).is_file()
    ]
    files += [
        SourceFile.of(
            p.path,
            f"debian/patches/{p.name}",
            f"kiln patch (DEP-3): {p.header.summary}; CVE: {', '.join(p.header.cves) or 'none'}"
            + (f"; Origin: {p.header.origin}" if p.header.origin else ""),
        )
        for p in loaded.patches
    ]
    files.append(SourceFile.of(loaded.path, f"kiln-recipe/{loaded.path.name}", "the kiln recipe"))
    stamps = [
        log.timestamp
        for deb in output.debs
        if (log := read_deb(deb).changelog()) is not None and log.timestamp is not None
    ]
    newest = max(stamps, default=0)  # the date kiln gave the build's changelog entry
    return source_spdx(
        source=output.source,
        version=output.version,
        files=files,
        debs=output.debs,
        maintainer=loaded.recipe.maintainer,
        created=dt.datetime.fromtimestamp(newest, dt.UTC),
    )
