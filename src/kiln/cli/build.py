"""``kiln test SPEC|LAYOUT`` and the adapters ``kiln build`` uses (spec -> assembly input).

Thin: the spec is mapped onto ``kiln.assemble`` values here, the work happens there and
in ``kiln.sandbox``. The CTRF report is written into the layout directory
(``out/<name>/ctrf-report.json``, next to ``hardening.json``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kiln.assemble import (
    AssemblyInput,
    BuiltImage,
    Compression,
    Group,
    HardeningReport,
    ImageFacts,
    ImageTest,
    PackageInput,
    PathSpec,
    User,
    build_image,
    package_input,
)
from kiln.assemble.build import write_archives
from kiln.assemble.cache import LayoutCache, build_key
from kiln.assemble.model import NONROOT_GID, NONROOT_UID
from kiln.cli.app import app, console, err_console
from kiln.debian.deb import read_deb
from kiln.errors import InputError, PolicyError
from kiln.resolve.lockfile import Lock
from kiln.sandbox import (
    ctrf_report,
    failure_text,
    remove_rootfs,
    resolve_image,
    run_tests,
    tests_of,
    unpack_image,
    write_ctrf,
)
from kiln.sandbox.unpack import host_arch, read_embedded_facts
from kiln.spec import ImageSpec, LoadedSpec, load_spec

CTRF_REPORT = "ctrf-report.json"
DEFAULT_OUTPUT = Path("out")

# ------------------------------------------------------------------ spec -> assembly input


def source_date_epoch(changelog_times: Iterable[int | None]) -> int:
    """SOURCE_DATE_EPOCH from the environment, else the newest package changelog date."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.isdigit():
            raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not a number of seconds")
        return int(env)
    times = [t for t in changelog_times if t is not None]
    if not times:
        raise InputError(
            "no package carries a dated changelog; set SOURCE_DATE_EPOCH to build reproducibly"
        )
    return max(times)


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


def assembly_input(
    spec: ImageSpec,
    *,
    variant: str,
    arch: str,
    packages: Sequence[PackageInput],
    source_date_epoch: int,
    lock_digest: str = "",
    version: str = "",
) -> AssemblyInput:
    """Map an ``ImageSpec`` and one variant/arch's packages onto assembly's input."""
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
        )
        for t in spec.tests
        if variant in t.variants
    )
    return AssemblyInput(
        facts=ImageFacts(
            name=spec.name if variant == "runtime" else f"{spec.name}-{variant}",
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
        tests=tests,
    )


def upstream_version(version: str) -> str:
    """``1:3.13.5-2+deb13u1`` -> ``3.13.5``: the part users recognise as the version."""
    upstream = version.split(":", 1)[-1]
    return upstream.rsplit("-", 1)[0] if "-" in upstream else upstream


def layout_dir(output: Path, name: str, variant: str) -> Path:
    """Where a variant's layout goes: ``out/<name>`` for runtime, ``out/<name>-<variant>``."""
    return output / (name if variant == "runtime" else f"{name}-{variant}")


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
) -> BuiltImage:
    """Build one variant of a locked spec from its verified .debs (per architecture).

    ``debs`` maps each architecture to the cached .deb files of the lock's packages for
    that variant (``Repository.fetch``). SOURCE_DATE_EPOCH defaults to the newest
    changelog among them; the image version is the ``version-package``'s upstream
    version. Writes ``out/<name>[-<variant>]/`` (+ ``.oci.tar`` / ``.docker.tar``).
    With a ``cache``, an unchanged build (same spec, lock, .debs, options, epoch
    override and kiln code) is restored instead of rebuilt.
    """
    spec = loaded.spec
    out = layout_dir(output, spec.name, variant)
    archives = {
        "oci_archive": out.with_name(out.name + ".oci.tar") if oci_archive else None,
        "docker_archive": out.with_name(out.name + ".docker.tar") if docker_archive else None,
        "docker_archive_arch": host_arch() if host_arch() in debs else None,
    }
    key = build_key(
        {
            "spec": loaded.sha256,
            "lock": lock.digest,
            "variant": variant,
            "debs": {arch: sorted(p.name for p in paths) for arch, paths in debs.items()},
            "compression": compression,
            "base": sorted(base_packages),
            "epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
        }
    )
    if cache is not None:
        restored = cache.lookup(key, out)
        if restored is not None:
            write_archives(restored, repo_tags=[f"{spec.name}:{restored.tag}"], **archives)  # type: ignore[arg-type]
            return restored
    unique = {path for paths in debs.values() for path in paths}  # arch: all ones repeat
    by_path = {path: read_deb(path, name=path.name) for path in sorted(unique)}
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
    inputs = [
        assembly_input(
            spec,
            variant=variant,
            arch=arch,
            packages=[package_input(d) for d in pkgs],
            source_date_epoch=epoch,
            lock_digest=lock.digest,
            version=version,
        )
        for arch, pkgs in sorted(read.items())
    ]
    tag = version or "latest"
    if variant != "runtime":
        tag = f"{tag}-{variant}"
    built = build_image(
        inputs,
        out,
        tag=tag,
        compression=compression,
        base_packages=base_packages,
        annotations=spec.annotations,
        repo_tags=[f"{spec.name}:{tag}"],
        **archives,  # type: ignore[arg-type]
    )
    if cache is not None:
        cache.store(key, built)
    return built


# -------------------------------------------------------------------------- rendering


def hardening_table(reports: Sequence[HardeningReport], title: str = "hardening") -> Table:
    """One row per architecture: how many ELF files have each protection."""
    table = Table(title=title)
    table.caption = "SSP: stack protector; RELRO: full RELRO; NOW: BIND_NOW; PIE: executables"
    for column in (
        "arch",
        "variant",
        "ELF",
        "PIE",
        "RELRO",
        "NOW",
        "SSP",
        "FORTIFY",
        "NX",
        "setid",
        "pruned",
    ):
        table.add_column(column, justify="right" if column not in ("arch", "variant") else "left")
    for r in reports:
        s = r.summary()
        execs = s["executables"]
        table.add_row(
            r.arch,
            r.variant,
            str(s["elf_files"]),
            f"{s['pie']}/{execs}",
            str(s["relro_full"]),
            str(s["bind_now"]),
            str(s["stack_protector"]),
            str(s["fortify"]),
            str(s["nx_stack"]),
            str(s["setid_stripped"]),
            str(s["pruned_files"]),
        )
    return table


# ------------------------------------------------------------------------------ kiln test


def _is_layout(path: Path) -> bool:
    return path.is_dir() and (path / "oci-layout").is_file()


def _layouts_for(target: Path, output: Path) -> list[Path]:
    if _is_layout(target):
        return [target]
    if not target.is_file():
        raise InputError(f"{target}: neither an OCI image layout directory nor a spec file")
    spec = load_spec(target).spec
    found = [
        output / name
        for name in (spec.name, *(f"{spec.name}-{v}" for v in spec.variants))
        if _is_layout(output / name)
    ]
    if not found:
        raise InputError(
            f"{target}: no built layout for image {spec.name!r} under {output}",
            hint=f"run: kiln build {target}",
        )
    return found


def check_layout(layout: Path, *, arch: str, tag: str | None) -> bool:
    """Unpack ``layout`` for ``arch``, run its stored tests, write CTRF; True if all pass."""
    image = resolve_image(layout, tag=tag, arch=arch)
    scratch = layout.parent / f".{layout.name}.test-{os.getpid()}"
    try:
        unpacked = unpack_image(image, scratch / "rootfs")
        facts = read_embedded_facts(unpacked.rootfs) or {}
        tests = tests_of(unpacked)
        outcomes = run_tests(unpacked, tests)
    finally:
        remove_rootfs(scratch)
    name = str(facts.get("name") or layout.name)
    report = ctrf_report(
        outcomes,
        app_name=name,
        extra={"arch": arch, "variant": facts.get("variant"), "manifest": image.manifest_digest},
    )
    report_path = layout / (CTRF_REPORT if arch == host_arch() else f"ctrf-report-{arch}.json")
    write_ctrf(report_path, report)
    table = Table(title=f"{name} ({arch})")
    table.add_column("test")
    table.add_column("status")
    table.add_column("ms", justify="right")
    for o in outcomes:
        colour = "green" if o.status == "passed" else "red"
        table.add_row(o.test.name, f"[{colour}]{o.status}[/]", str(o.stop_ms - o.start_ms))
    console.print(table)
    if not tests:
        console.print(f"[yellow]{name}: the image carries no tests[/]")
    for o in outcomes:
        if o.status != "passed":
            err_console.print(failure_text(o), markup=False, highlight=False)
    console.print(f"report: {report_path}")
    return all(o.status == "passed" for o in outcomes)


@app.command("test")
def run_image_tests(
    target: Annotated[Path, typer.Argument(help="an image spec (YAML) or an OCI layout dir")],
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="architecture(s) to test (default: host)")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="tag in the layout (default: first)")] = None,
    output: Annotated[Path, typer.Option(help="where kiln build wrote layouts")] = DEFAULT_OUTPUT,
) -> None:
    """Run the image's tests inside it, sandboxed with bubblewrap; write a CTRF report."""
    archs = arch or [host_arch()]
    failed = []
    for layout in _layouts_for(target, output):
        for one in archs:
            if not check_layout(layout, arch=one, tag=tag):
                failed.append(f"{layout} ({one})")
    if failed:
        raise PolicyError("image tests failed", details=failed)
