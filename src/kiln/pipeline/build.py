"""Build a locked spec: the lock policy, the per-variant loop, the assembly inputs.

``build_spec`` is what ``kiln build`` and ``kiln publish`` run: settle the lock under
the requested policy (keep, frozen, refresh), fetch each variant's verified .debs and
assemble it. What it observes (the lock it settled on, each variant built) goes to a
``BuildListener`` that the caller renders; the pipeline itself prints nothing. The spec
and lock are mapped onto ``kiln.assemble`` values here; the work happens in
``kiln.assemble``. SOURCE_DATE_EPOCH defaults to the newest changelog date among the
packages, so the same lock gives the same digests on any machine.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kiln.assemble import (
    AptSource,
    AssemblyInput,
    BuiltImage,
    Compression,
    Group,
    ImageFacts,
    ImageTest,
    PackageInput,
    PathSpec,
    Probe,
    User,
    WheelInstall,
    build_image,
    package_input,
)
from kiln.assemble.build import write_archives
from kiln.assemble.cache import LayoutCache, build_key
from kiln.assemble.layercache import LayerCache
from kiln.assemble.model import NONROOT_GID, NONROOT_UID, NpmPackageInput
from kiln.debian.deb import DebPackage, read_deb
from kiln.debian.distro import get_distro
from kiln.debian.sources import Mirrors
from kiln.epoch import source_date_epoch as epoch_from_environment
from kiln.errors import InputError, Location, TransportError
from kiln.pipeline.lock import CurrentLock, LockPolicy, current_lock, locked_to_binary
from kiln.pipeline.origin import checkout_annotations, licenses_annotation
from kiln.pipeline.tags import image_tag
from kiln.progress import NO_PROGRESS, Progress
from kiln.resolve.lockfile import Lock, LockedNpmPackage
from kiln.sandbox.unpack import host_arch
from kiln.spec import ImageSpec, LoadedSpec, lock_path_for

if TYPE_CHECKING:
    from kiln.pipeline.archive import ArchiveAccess
    from kiln.upstream import NpmIndex

DEFAULT_OUTPUT = Path("out")


def source_date_epoch(changelog_times: Iterable[int | None]) -> int:
    """SOURCE_DATE_EPOCH from the environment, else the newest package changelog date."""
    env = epoch_from_environment()
    if env is not None:
        return env
    times = [t for t in changelog_times if t is not None]
    if not times:
        raise InputError(
            "no package carries a dated changelog; set SOURCE_DATE_EPOCH to build reproducibly"
        )
    return max(times)


def _base_epoch(
    debs: Mapping[str, Sequence[DebPackage]], base_packages: frozenset[str]
) -> int | None:
    """The shared base layer's SOURCE_DATE_EPOCH: the environment's, else the newest
    changelog of the base packages alone, so that the layer is the same tar in every
    image on the same base package versions, whatever else they hold (None: the image's)."""
    times = [
        log.timestamp
        for pkgs in debs.values()
        for d in pkgs
        if d.control.package in base_packages and (log := d.changelog()) is not None
    ]
    return source_date_epoch(times) if times else None


def _run_as(name: str | None, spec: ImageSpec, variant: str) -> str:
    """A spec's ``run-as`` (name or uid) as the numeric ``uid:gid`` the config carries."""
    if name is None:
        return f"{NONROOT_UID}:{NONROOT_GID}" if variant == "runtime" else "0:0"
    if name.isdigit():
        return f"{name}:{name}"
    if name == "root":
        return "0:0"
    if name == "nonroot":
        return f"{NONROOT_UID}:{NONROOT_GID}"
    for user in spec.accounts.users:
        if user.name == name:
            return f"{user.uid}:{user.gid if user.gid is not None else user.uid}"
    raise InputError(f"run-as: user {name!r} is not defined in accounts.users")


def apt_sources_for(spec: ImageSpec, mirrors: Mirrors | None) -> tuple[AptSource, ...]:
    """The Debian archive as apt in the image sees it: kiln's own mirrors, the spec's suites.

    Debian's images list ``<codename> <codename>-updates`` on the main archive and
    ``<codename>-security`` on the security archive, component ``main``.
    """
    if mirrors is None:
        return ()
    main, updates, security = get_distro(spec.distro).suites
    return (
        AptSource(mirrors.debian, (main, updates)),
        AptSource(mirrors.security, (security,)),
    )


def assembly_input(
    spec: ImageSpec,
    *,
    variant: str,
    arch: str,
    packages: Sequence[PackageInput],
    source_date_epoch: int,
    lock_digest: str = "",
    version: str = "",
    mirrors: Mirrors | None = None,
    npm: Sequence[NpmPackageInput] = (),
) -> AssemblyInput:
    """Map an ``ImageSpec`` and one variant/arch's packages onto assembly's input.

    ``mirrors`` (kiln's mirror configuration) become the image's apt sources when it
    carries apt and the archive keyring.
    """
    overlay = spec.variant(variant)
    users = tuple(
        User(
            name=u.name,
            uid=u.uid,
            gid=u.gid if u.gid is not None else u.uid,
            home=u.home or f"/home/{u.name}",
            shell=u.shell,
            gecos=u.name,
        )
        for u in spec.accounts.users
    )
    groups = tuple(Group(g.name, g.gid, tuple(g.members)) for g in spec.accounts.groups)
    known_gids = {g.gid for g in groups} | {0, NONROOT_GID, 65534}
    groups += tuple(
        Group(u.name, u.gid) for u in users if u.gid not in known_gids and u.gid == u.uid
    )
    paths = []
    for p in (*spec.paths, *overlay.paths):
        kind = {"directory": "dir", "symlink": "symlink", "file": "file"}[p.type]
        default_mode = 0o755 if kind == "dir" else 0o644
        paths.append(
            PathSpec(
                path=p.path,
                kind=kind,  # type: ignore[arg-type]
                mode=p.mode if p.mode is not None else default_mode,
                uid=p.uid,
                gid=p.gid,
                target=p.target,
                content=(p.content or "").encode(),
                replace=p.replace,
            )
        )
    env = dict(spec.env)
    env.update(overlay.env)
    run_as = overlay.run_as if overlay.run_as is not None else spec.accounts.run_as
    if variant == "runtime" or overlay.run_as is not None:
        user = _run_as(run_as, spec, variant)
    else:
        user = "0:0"
    tests = tuple(
        ImageTest(
            name=t.name,
            command=tuple(t.command),
            exit_code=t.exit_code,
            stdout_pattern=t.stdout,
            stderr_pattern=t.stderr,
            timeout=t.timeout,
            network=t.network,
            user=_run_as(t.user, spec, variant) if t.user else None,
            probe=(
                None
                if t.probe is None
                else Probe(port=t.probe.port, expect=t.probe.expect, send=t.probe.send)
            ),
        )
        for t in spec.tests
        if variant in t.variants and (not t.archs or arch in t.archs)
    )
    return AssemblyInput(
        facts=ImageFacts(
            name=spec.label(variant),
            version=version,
            lock_digest=lock_digest,
            description=spec.description,
        ),
        arch=arch,
        variant="runtime" if variant == "runtime" else "dev",
        packages=tuple(packages),
        source_date_epoch=source_date_epoch,
        users=users,
        groups=groups,
        paths=tuple(paths),
        env=tuple(sorted(env.items())),
        entrypoint=tuple(overlay.entrypoint if overlay.entrypoint is not None else spec.entrypoint),
        cmd=tuple(overlay.cmd if overlay.cmd is not None else spec.cmd),
        workdir=spec.workdir,
        user=user,
        exposed_ports=tuple(overlay.ports if overlay.ports is not None else spec.ports),
        stop_signal=overlay.stop_signal or spec.stop_signal,
        tests=tests,
        wheels=tuple(
            WheelInstall(wheel=w.wheel, interpreter=w.interpreter, prefix=w.prefix)
            for w in spec.wheels_for(variant)
        ),
        path_excludes=spec.path_exclude_for(variant),
        allow_paths=SHELL_PATHS if spec.shell and variant == "runtime" else (),
        apt_sources=apt_sources_for(spec, mirrors),
        npm=tuple(npm),
    )


def npm_inputs(
    locked: Sequence[LockedNpmPackage], index: NpmIndex | None = None
) -> tuple[NpmPackageInput, ...]:
    """The locked npm tarballs, from kiln's cache (or the registry), verified and read."""
    if not locked:
        return ()
    from kiln.upstream import NpmIndex, read_npm_tarball  # noqa: PLC0415 (npm specs only)

    index = index or NpmIndex.from_environment()
    return tuple(
        NpmPackageInput(
            name=p.name,
            version=p.version,
            integrity=p.integrity,
            members=read_npm_tarball(
                index.tarball(p), name=p.name, version=p.version, source=f"{p.name}@{p.version}"
            ),
        )
        for p in locked
    )


#: what ``shell:`` lets through the runtime no-shell rule: the POSIX shells a script
#: starts with (dash as /bin/sh; bash for a ``#!/bin/bash`` launcher such as R's), only
#: when the spec lists their packages; package managers never
_SHELL_NAMES = ("sh", "dash", "bash", "rbash", "busybox")
SHELL_PATHS = tuple(f"{prefix}/{name}" for prefix in ("usr/bin", "bin") for name in _SHELL_NAMES)


def _shell_annotation(spec: ImageSpec, variant: str) -> dict[str, str]:
    """A runtime image that keeps a shell says so, and why (``shell:``)."""
    if spec.shell and variant == "runtime":
        return {"dev.kiln.image.shell": spec.shell}
    return {}


def upstream_version(version: str) -> str:
    """``1:3.13.5-2+deb13u1`` -> ``3.13.5``: the part users recognise as the version."""
    upstream = version.split(":", 1)[-1]
    return upstream.rsplit("-", 1)[0] if "-" in upstream else upstream


def layout_dir(output: Path, name: str, variant: str) -> Path:
    """Where a variant's layout goes: ``out/<name>`` for runtime, ``out/<name>-<variant>``."""
    return output / (name if variant == "runtime" else f"{name}-{variant}")


class _DebMemo:
    """.debs this process has read and checked, kept for the next build (LRU, bounded by
    the bytes of their contents).

    Reading a .deb is mostly xz decompression: a spec's runtime and -dev variants read
    the same .debs, and every image of a catalog reads libc6, base-files and tzdata, so a
    catalog worker read each of them once per image before. An entry is keyed by the
    file's identity (device, inode, size, mtime): the cache's .debs are content-addressed
    and replaced only by rename, so a changed file is a new key. ``DebPackage`` is frozen
    with read-only contents, so sharing one between builds is safe.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[int, int, int, int], tuple[DebPackage, int]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: Path) -> tuple[int, int, int, int]:
        st = path.stat()
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self, path: Path) -> DebPackage | None:
        key = self._key(path)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, path: Path, deb: DebPackage) -> None:
        size = sum(len(body) for body in deb.contents.values()) + 200 * len(deb.members)
        if size > self.limit // 4:
            return  # one huge package (a JDK) would push out everything else
        key = self._key(path)
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (deb, size)
            self._bytes += size
            while self._bytes > self.limit and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped


def _memo_limit() -> int:
    try:
        return max(0, int(os.environ.get("KILN_DEB_MEMO_MB", "1024"))) << 20
    except ValueError:
        return 1024 << 20


_DEBS = _DebMemo(_memo_limit())


def _read_debs(paths: Sequence[Path]) -> dict[Path, DebPackage]:
    """Read (and check) every .deb, in threads: xz and zstd decompression release the GIL,
    so a cold build of an image with large packages (node, java) uses every core. A .deb
    this process read before comes from ``_DEBS`` (``KILN_DEB_MEMO_MB``, default 1024;
    0 turns it off)."""
    found: dict[Path, DebPackage] = {}
    for path in paths:
        if (hit := _DEBS.get(path)) is not None:
            found[path] = hit
    missing = [p for p in paths if p not in found]
    workers = min(len(missing), os.cpu_count() or 1)
    if workers <= 1:
        read = {path: read_deb(path, name=path.name) for path in missing}
    else:
        # the largest first, so one big package does not start last and run alone
        order = sorted(missing, key=lambda p: p.stat().st_size, reverse=True)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read-deb") as pool:
            read = dict(
                zip(order, pool.map(lambda p: read_deb(p, name=p.name), order), strict=True)
            )
    for path, deb in read.items():
        _DEBS.put(path, deb)
    found.update(read)
    return {path: found[path] for path in paths}


def build_variant(
    loaded: LoadedSpec,
    lock: Lock,
    variant: str,
    debs: Mapping[str, Sequence[Path]],
    *,
    output: Path = DEFAULT_OUTPUT,
    compression: Compression = "gzip",
    base_packages: frozenset[str] = frozenset(),
    oci_archive: bool = False,
    docker_archive: bool = False,
    cache: LayoutCache | None = None,
    layer_cache: LayerCache | None = None,
    mirrors: Mirrors | None = None,
    npm_index: NpmIndex | None = None,
) -> BuiltImage:
    """Build one variant of a locked spec from its verified .debs (per architecture).

    ``debs`` maps each architecture to the cached .deb files of the lock's packages for
    that variant (``ArchiveAccess.fetch``). SOURCE_DATE_EPOCH defaults to the newest
    changelog among them; the image version is the ``version-package``'s upstream
    version. Writes ``out/<name>[-<variant>]/`` (+ ``.oci.tar`` / ``.docker.tar``).
    With a ``cache``, an unchanged build (same spec, lock, .debs, options, epoch
    override and kiln code) is restored instead of rebuilt. The lock's npm tarballs
    for the variant come from ``npm_index`` (default: npm's configured registry,
    consulted only for tarballs missing from kiln's cache). ``base_packages`` (the spec's
    ``layering: shared``) split off a base layer, whose blob ``layer_cache`` shares
    between images.
    """
    spec = loaded.spec
    out = layout_dir(output, spec.name, variant)
    archives = {
        "oci_archive": out.with_name(out.name + ".oci.tar") if oci_archive else None,
        "docker_archive": out.with_name(out.name + ".docker.tar") if docker_archive else None,
        "docker_archive_arch": host_arch() if host_arch() in debs else None,
    }
    origin = checkout_annotations(loaded.path, lock_path_for(loaded.path))
    key = build_key(
        {
            "origin": origin,
            "spec": loaded.sha256,
            "lock": lock.digest,
            "variant": variant,
            "debs": {arch: sorted(p.name for p in paths) for arch, paths in debs.items()},
            "compression": compression,
            "base": sorted(base_packages),
            "epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
            **({"mirrors": [mirrors.debian, mirrors.security]} if mirrors else {}),
        }
    )
    if cache is not None:
        restored = cache.lookup(key, out)
        if restored is not None:
            write_archives(restored, repo_tags=[f"{spec.name}:{restored.tag}"], **archives)  # type: ignore[arg-type]
            return restored
    unique = {path for paths in debs.values() for path in paths}  # arch: all ones repeat
    by_path = _read_debs(sorted(unique))
    read = {arch: [by_path[path] for path in paths] for arch, paths in debs.items()}
    epoch = source_date_epoch(
        (log.timestamp if (log := d.changelog()) is not None else None)
        for pkgs in read.values()
        for d in pkgs
    )
    version = ""
    if spec.version_package:
        for pkgs in read.values():
            for d in pkgs:
                if d.control.package == spec.version_package:
                    version = upstream_version(d.control.version)
                    origin = {**licenses_annotation(d), **origin}
    npm = npm_inputs(lock.npm_packages(variant), npm_index)
    inputs = [
        assembly_input(
            spec,
            variant=variant,
            arch=arch,
            packages=[package_input(d) for d in pkgs],
            source_date_epoch=epoch,
            lock_digest=lock.digest,
            version=version,
            mirrors=mirrors,
            npm=npm,
        )
        for arch, pkgs in sorted(read.items())
    ]
    tag = image_tag(version, variant, where=Location(str(loaded.path), field="version-package"))
    base_epoch = _base_epoch(read, base_packages)
    built = build_image(
        inputs,
        out,
        tag=tag,
        compression=compression,
        base_packages=base_packages,
        base_epoch=base_epoch,
        layer_cache=layer_cache,
        annotations={**origin, **_shell_annotation(spec, variant), **spec.annotations},
        repo_tags=[f"{spec.name}:{tag}"],
        **archives,  # type: ignore[arg-type]
    )
    if cache is not None:
        cache.store(key, built)
    return built


# ------------------------------------------------------------------ the per-spec build


@dataclass(frozen=True)
class BuildOptions:
    """What ``kiln build`` (and ``kiln publish``) was asked for."""

    output: Path = DEFAULT_OUTPUT
    archs: tuple[str, ...] = ()  # empty: every arch of the spec
    variants: tuple[str, ...] = ()  # empty: every variant
    frozen: bool = False
    refresh: bool = False  # relock against the archive before building
    compression: Compression = "gzip"
    oci_archive: bool = False
    docker_archive: bool = False
    cache: bool = True

    @property
    def lock_policy(self) -> LockPolicy:
        """``--frozen`` refuses a stale lock, ``--refresh`` relocks first, else keep it.

        Raises ``InputError`` when both were asked for.
        """
        if self.frozen and self.refresh:
            raise InputError("--frozen and --refresh contradict each other: choose one")
        return "frozen" if self.frozen else "refresh" if self.refresh else "keep"


@dataclass(frozen=True)
class BuiltVariant:
    """One built variant and what the orchestrator observed while building it."""

    loaded: LoadedSpec
    lock: Lock
    variant: str
    image: BuiltImage
    started_on: dt.datetime
    finished_on: dt.datetime

    @property
    def label(self) -> str:
        """The variant's image name (``python``, ``python-dev``)."""
        return self.loaded.spec.label(self.variant)


class BuildListener(Protocol):
    """What ``build_spec`` observed, for a caller to render (the CLI prints it)."""

    def lock_settled(self, item: LoadedSpec, current: CurrentLock) -> None:
        """The lock the build uses: written anew, drifted from the archive, or unchecked."""

    def variant_built(self, built: BuiltVariant) -> None:
        """One variant's layout is written."""


class _Silent:
    def lock_settled(self, item: LoadedSpec, current: CurrentLock) -> None:
        del item, current

    def variant_built(self, built: BuiltVariant) -> None:
        del built


#: the listener of a library caller that renders nothing
SILENT_BUILD: BuildListener = _Silent()


def build_spec(
    item: LoadedSpec,
    archive: ArchiveAccess,
    options: BuildOptions,
    *,
    listener: BuildListener = SILENT_BUILD,
    progress: Progress = NO_PROGRESS,
) -> list[BuiltVariant]:
    """Lock (under ``options.lock_policy``), fetch and build every requested variant.

    A fetch that fails while the lock has drifted from the archive says that the pool
    dropped the superseded .debs and how to relock.
    """
    cache = LayoutCache(archive.cache.root / "layouts") if options.cache else None
    layers = LayerCache(archive.cache.root / "layers") if options.cache else None
    current = current_lock(item, archive, options.lock_policy)
    listener.lock_settled(item, current)
    lock = current.lock
    distro = get_distro(lock.distro)
    unknown = sorted(set(options.archs) - set(item.spec.archs))
    if unknown:
        raise InputError(f"{item.path}: the spec does not build {', '.join(unknown)}")
    archs = [a for a in item.spec.archs if not options.archs or a in options.archs]
    built = []
    for name in item.spec.variant_names():
        if options.variants and name not in options.variants:
            continue
        started = dt.datetime.now(dt.UTC)
        label = item.spec.label(name)
        count = sum(len(lock.packages(name, a)) for a in archs)
        with progress.phase(f"fetching {count} .debs and assembling {label} ({', '.join(archs)})"):
            try:
                debs: dict[str, Sequence[Path]] = {
                    a: archive.fetch(distro, [locked_to_binary(p) for p in lock.packages(name, a)])
                    for a in archs
                }
            except TransportError as exc:
                if not current.drift:
                    raise
                raise TransportError(
                    exc.message,
                    exc.location,
                    hint="the lock is behind the archive, whose pool drops superseded .debs: "
                    "build with --refresh (or `kiln lock` and review the change)",
                    details=exc.details,
                ) from exc
            image = build_variant(
                item,
                lock,
                name,
                debs,
                output=options.output,
                compression=options.compression,
                oci_archive=options.oci_archive,
                docker_archive=options.docker_archive,
                base_packages=item.spec.base_packages_for(name),
                cache=cache,
                layer_cache=layers,
                mirrors=archive.mirrors,
            )
        done = BuiltVariant(item, lock, name, image, started, dt.datetime.now(dt.UTC))
        listener.variant_built(done)
        built.append(done)
    return built
