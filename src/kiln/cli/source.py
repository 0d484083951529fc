"""``kiln source fetch``, ``package build``, ``rebuild``, ``repo publish`` and ``serve``.

The commands import kiln.recipes / kiln.aptrepo inside their bodies, so other commands
start without them.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kiln.cli.app import app, console, err_console
from kiln.cli.attest import Keyless, KeyOption, PasswordFile
from kiln.epoch import source_date_epoch
from kiln.errors import PolicyError
from kiln.pipeline.signing import bundle_signer
from kiln.progress import ConsoleProgress

source_app = typer.Typer(help="Debian source packages: fetch them verified.", no_args_is_help=True)
package_app = typer.Typer(help="Build packages from source recipes.", no_args_is_help=True)
repo_app = typer.Typer(help="kiln's own signed apt repository.", no_args_is_help=True)
app.add_typer(source_app, name="source")
app.add_typer(package_app, name="package")
app.add_typer(repo_app, name="repo")


@source_app.command("fetch")
def source_fetch(
    package: Annotated[str, typer.Argument(help="source package name, e.g. jq")],
    version: Annotated[str | None, typer.Option(help="exact version (default: newest)")] = None,
    distro: Annotated[str, typer.Option(help="distro id")] = "debian-13",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="copy the files into this directory")
    ] = None,
) -> None:
    """Download a source package, every file checked against the signed Sources index."""
    from kiln.debian import get_distro
    from kiln.pipeline.source import SourceBuilder

    builder = SourceBuilder.from_environment(ConsoleProgress(err_console))
    fetched, _ = builder.fetch(get_distro(distro), package, version=version)
    directory = fetched.directory
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        for item in [*fetched.package.upstream_files]:
            (output / item.name).write_bytes((directory / item.name).read_bytes())
        (output / fetched.dsc.name).write_bytes(fetched.dsc.read_bytes())
        directory = output
    table = Table("file", "size", "sha256 (verified)")
    for item in fetched.package.files:
        table.add_row(item.name, str(item.size), item.sha256)
    console.print(table)
    note = " (synthesised from the signed index: the mirror has no .dsc)"
    console.print(
        f"{fetched.package.name} {fetched.package.version} from {fetched.package.suite} "
        f"-> {directory}/{fetched.dsc.name}{note if fetched.dsc_synthesised else ''}",
        markup=False,
        highlight=False,
    )


@package_app.command("build")
def package_build(
    recipe: Annotated[Path, typer.Argument(help="recipe file, e.g. recipes/jq.yaml")],
    arch: Annotated[str | None, typer.Option(help="architecture (default: this machine's)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="where the .debs go")] = Path(
        "out/packages"
    ),
    key: KeyOption = None,
    keyless: Keyless = False,
    password_file: PasswordFile = None,
) -> None:
    """Build a recipe in a sandbox with no network: Debian's source + patches -> +kiln<N>.

    Beside the .debs: the build record, SLSA provenance and an SPDX SBOM of the source
    package; with --key (or --keyless) both are signed as Sigstore bundles too.
    """
    from kiln.pipeline.source import SourceBuilder
    from kiln.sandbox.unpack import host_arch

    signer = bundle_signer(key, keyless, password_file) if key is not None or keyless else None
    builder = SourceBuilder.from_environment(ConsoleProgress(err_console))
    result = builder.build_recipe(recipe, arch=arch or host_arch(), out_dir=output, signer=signer)
    table = Table("package", "sha256")
    for deb in result.debs:
        table.add_row(deb.name, hashlib.sha256(deb.read_bytes()).hexdigest())
    console.print(table)
    console.print(
        f"built {result.source} {result.version} in {result.duration:.0f} s "
        f"(patches: {', '.join(result.patches) or 'none'}; "
        f"CVEs: {', '.join(result.cves) or 'none'})",
        markup=False,
        highlight=False,
    )


@package_app.command("rebase")
def package_rebase(
    recipe: Annotated[Path, typer.Argument(help="recipe file, e.g. recipes/jq.yaml")],
    check: Annotated[
        bool, typer.Option("--check", help="only report; exit 1 when the recipe is behind")
    ] = False,
) -> None:
    """Move a recipe's base to Debian's newest version of its source (rewrites `version:`).

    A recipe refuses to build on a base older than Debian's newest (its +kiln<N> would
    shadow a security update); this is the step that follows Debian. The patches are not
    touched: `kiln package build` then tells whether they still apply.
    """
    from kiln.debian import get_distro
    from kiln.fileio import atomic_write
    from kiln.pipeline.source import SourceBuilder
    from kiln.recipes import load_recipe, rebased

    loaded = load_recipe(recipe)
    builder = SourceBuilder.from_environment(ConsoleProgress(err_console))
    universe = builder.universe(get_distro(loaded.recipe.distro), (loaded.recipe.source,))
    versions = universe.versions(loaded.recipe.source)
    if not versions:
        raise PolicyError(
            f"{recipe}: source package {loaded.recipe.source!r} is not in "
            f"{', '.join(universe.base_urls)}"
        )
    newest = versions[0]
    said = f"{recipe}: {loaded.recipe.source} {loaded.recipe.version}"
    if newest.version == loaded.recipe.version:
        console.print(f"{said} is Debian's newest ({newest.suite})", markup=False)
        return
    if check:
        console.print(f"{said} is behind {newest.version} ({newest.suite})", markup=False)
        raise typer.Exit(1)
    atomic_write(recipe, rebased(loaded, newest.version))
    console.print(f"{said} -> {newest.version} ({newest.suite})", markup=False, highlight=False)


@app.command("rebuild")
def rebuild(
    package: Annotated[str, typer.Argument(help="source package to rebuild, e.g. jq")],
    verify: Annotated[
        bool, typer.Option("--verify", help="compare the rebuilt .debs with Debian's by sha256")
    ] = False,
    arch: Annotated[str | None, typer.Option(help="architecture (default: this machine's)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("out/rebuild"),
    nocheck: Annotated[
        bool, typer.Option("--nocheck", help="skip the package's test suite (faster)")
    ] = False,
) -> None:
    """Rebuild an unpatched Debian package in the sandbox (and with --verify, compare)."""
    from kiln.pipeline.source import SourceBuilder
    from kiln.sandbox.unpack import host_arch

    if not verify:
        raise typer.BadParameter("only --verify rebuilds are supported", param_hint="--verify")
    builder = SourceBuilder.from_environment(ConsoleProgress(err_console))
    result = builder.rebuild_verify(
        package, arch=arch or host_arch(), out_dir=output / package, nocheck=nocheck
    )
    table = Table("package", "rebuilt sha256", "Debian sha256", "result")
    for item in result.packages:
        verdict = "[green]identical[/]" if item.identical else "[red]differs[/]"
        table.add_row(item.package, item.ours[:16], item.theirs[:16], verdict)
    console.print(table)
    for item in result.packages:
        for line in item.differences:
            console.print(f"  {item.package}: {line}", markup=False, highlight=False)
        if item.diffoscope is not None:
            state = "" if item.diffoscope.complete else f" (incomplete: {item.diffoscope.note})"
            console.print(
                f"  {item.package}: diffoscope report {item.diffoscope.path}{state}",
                markup=False,
                highlight=False,
                soft_wrap=True,  # a path to copy, unbroken
            )
    if result.skipped:
        console.print(f"not compared (not in Debian's main archive): {', '.join(result.skipped)}")
    differs = any(not item.identical for item in result.packages)
    if differs and not result.diffoscope_available:
        console.print(
            "diffoscope is not installed: differences are shown member by member only "
            "(apt-get install diffoscope-minimal for a full report)",
            markup=False,
            highlight=False,
        )
    how = (
        "member by member, and by diffoscope"
        if result.diffoscope_available
        else "member by member (no diffoscope)"
    )
    console.print(
        f"{result.source} {result.version}: {result.rate:.0%} of .debs bit-for-bit identical "
        f"(differences shown {how})",
        markup=False,
        highlight=False,
    )
    if not result.identical:
        raise PolicyError(f"{result.source} {result.version} does not rebuild reproducibly")


@repo_app.command("publish")
def repo_publish(
    directory: Annotated[Path, typer.Argument(help="repository directory (created)")],
    files: Annotated[
        list[Path] | None, typer.Argument(help=".deb and .dsc files to add to the pool")
    ] = None,
    suite: Annotated[str, typer.Option(help="suite name")] = "kiln",
    arch: Annotated[list[str] | None, typer.Option(help="architectures to index")] = None,
    gnupghome: Annotated[
        Path | None, typer.Option(help="GNUPGHOME with kiln's key (default $KILN_CACHE/gnupg)")
    ] = None,
) -> None:
    """Add packages to kiln's repository and regenerate its signed indexes."""
    from kiln.aptrepo import ensure_signing_key, publish
    from kiln.debian.cache import default_cache_root

    home = gnupghome or default_cache_root() / "gnupg"
    key = ensure_signing_key(home)
    epoch = source_date_epoch()
    date = datetime.fromtimestamp(epoch, UTC) if epoch is not None else datetime.now(UTC)
    result = publish(
        directory,
        files or [],
        key=key,
        date=date,
        suite=suite,
        archs=tuple(arch or ("amd64", "arm64")),
    )
    console.print(
        f"published {len(result.packages)} .debs and {len(result.sources)} source packages "
        f"to {directory} (suite {suite}, signed by {key.fingerprint}; keyring {result.keyring})",
        markup=False,
        highlight=False,
    )


@app.command("serve")
def serve(
    directory: Annotated[
        Path, typer.Argument(help="a repository directory written by kiln repo publish")
    ],
    host: Annotated[
        str,
        typer.Option(help="address to bind; loopback by default, anything else must be named here"),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: a free one)")] = 8080,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="do not log requests")] = False,
) -> None:
    """Serve a kiln apt repository read-only over HTTP (GET and HEAD) until interrupted.

    Only regular files inside DIRECTORY are served: no directory listings, no .. (also
    percent-encoded), no hidden files, no symlinks that lead out of the tree.

    Point kiln at the printed URL with KILN_REPO=URL and KILN_REPO_KEYRING=KEYRING, or
    apt with a line "deb \\[signed-by=KEYRING] URL kiln main": the signatures, checked
    against the keyring, make the content trustworthy, not the connection.
    """
    import sys

    from kiln.aptrepo import check_repository
    from kiln.aptrepo.serve import bind
    from kiln.net import is_loopback_host

    repository = check_repository(directory)
    server = bind(
        repository,
        host,
        port,
        log=None if quiet else lambda line: print(line, file=sys.stderr, flush=True),
    )
    keyring = repository.keyring or "<the repository's exported keyring>"
    if not is_loopback_host(host):
        console.print(
            f"warning: serving on {host}, reachable from other machines",
            markup=False,
            highlight=False,
        )
    console.print(
        f"serving {repository.root} (suites: {', '.join(repository.suites)}) at {server.url}/\n"
        f"  KILN_REPO={server.url} KILN_REPO_KEYRING={keyring}\n"
        f"  deb [signed-by={keyring}] {server.url} {repository.suites[0]} main",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped", markup=False, highlight=False)
    finally:
        server.server_close()
