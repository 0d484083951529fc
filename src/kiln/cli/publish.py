"""``kiln publish``: build, test, sign, attest and push images with their attestations."""

# The registry, attestation and SBOM stacks load inside the command so that other
# commands start fast.
# ruff: noqa: PLC0415

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app, console, err_console
from kiln.cli.attest import Keyless, KeyOption, PasswordFile
from kiln.cli.buildview import (
    DEFAULT_OUTPUT,
    ConsoleBuildListener,
    show_check,
    split_csv,
    warn_untestable,
)

if TYPE_CHECKING:
    from kiln.attest import Attestation


@app.command()
def publish(
    specs: Annotated[list[Path], typer.Argument(help="image spec files (images/<name>.yaml)")],
    registry: Annotated[
        str, typer.Option("--registry", help="HOST[:PORT]\\[/PREFIX]; images go to PREFIX/<name>")
    ],
    key: KeyOption = None,
    keyless: Keyless = False,
    password_file: PasswordFile = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plain HTTP to a registry that is not loopback")
    ] = False,
    arch: Annotated[list[str] | None, typer.Option("--arch", help="only these archs")] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="only these variants")
    ] = None,
    frozen: Annotated[bool, typer.Option("--frozen", help="refuse a stale lock")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="relock against the archive first")
    ] = False,
    output: Annotated[Path, typer.Option(help="where layouts go")] = DEFAULT_OUTPUT,
) -> None:
    """Build (or reuse), test, sign and push each spec's images with SBOMs and provenance."""
    from kiln.pipeline import ArchiveAccess
    from kiln.pipeline.build import BuildOptions, build_spec
    from kiln.pipeline.imagetest import check_every_platform
    from kiln.pipeline.publish import (
        BuildObservation,
        Destination,
        already_attested,
        attestations_for,
    )
    from kiln.pipeline.publish import publish as push_image
    from kiln.pipeline.signing import bundle_signer
    from kiln.progress import ConsoleProgress
    from kiln.registry import RegistryClient
    from kiln.spec import load_spec
    from kiln.vuln.advisories import AdvisoryStore

    destination = Destination.parse(registry)
    signer = bundle_signer(key, keyless, password_file)
    options = BuildOptions(
        output=output,
        archs=tuple(split_csv(arch)),
        variants=tuple(split_csv(variant)),
        frozen=frozen,
        refresh=refresh,
    )
    archive = ArchiveAccess.from_environment()
    listener = ConsoleBuildListener()
    progress = ConsoleProgress(err_console)
    with (
        RegistryClient.for_host(destination.registry, insecure=insecure) as client,
        AdvisoryStore.open() as advisories,  # the image's OpenVEX, when it has determinations
    ):
        for path in specs:
            loaded = load_spec(path)
            for built in build_spec(loaded, archive, options, listener=listener, progress=progress):
                if already_attested(
                    client, destination, built.loaded.spec.name, built.image.index_digest, signer
                ):
                    # same digest, tested and attested before: only the tags are refreshed
                    attestations: tuple[Attestation, ...] = ()
                    seen = BuildObservation.of(built, test_reports={})
                else:
                    reports = check_every_platform(
                        built, on_checked=show_check, on_untestable=warn_untestable
                    )
                    seen = BuildObservation.of(built, test_reports=reports)
                    attestations = attestations_for(seen, signer, advisories=advisories)
                result = push_image(seen, attestations, client=client, destination=destination)
                console.print(
                    f"published {built.label} as {', '.join(result.tags)}: {result.reference} "
                    f"({result.image_blobs_sent} new image blobs, {result.attestations} "
                    f"attestations, {result.uploaded_bytes / 1024**2:.2f} MiB sent)",
                    soft_wrap=True,
                    highlight=False,
                )
