"""``kiln publish``: build, test, sign, attest and push images with their attestations."""

# The registry, attestation and SBOM stacks load inside the command so that other
# commands start fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kiln.cli.app import app, console
from kiln.cli.attest import Keyless, KeyOption, PasswordFile, bundle_signer
from kiln.cli.build import (
    CTRF_REPORT,
    DEFAULT_OUTPUT,
    BuildOptions,
    BuiltVariant,
    _csv,
    build_spec,
    check_layout,
)
from kiln.errors import PolicyError

if TYPE_CHECKING:
    from kiln.attest import Attestation
    from kiln.pipeline.publish import BuildObservation


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
    from kiln.pipeline import Repository
    from kiln.pipeline.publish import Destination, already_attested, attestations_for
    from kiln.pipeline.publish import publish as push_image
    from kiln.registry import RegistryClient
    from kiln.spec import load_spec

    destination = Destination.parse(registry)
    signer = bundle_signer(key, keyless, password_file)
    options = BuildOptions(
        output=output,
        archs=tuple(_csv(arch)),
        variants=tuple(_csv(variant)),
        frozen=frozen,
        refresh=refresh,
    )
    repo = Repository.from_environment()
    with RegistryClient.for_host(destination.registry, insecure=insecure) as client:
        for path in specs:
            for built in build_spec(load_spec(path), repo, options):
                if already_attested(
                    client, destination, built.loaded.spec.name, built.image.index_digest, signer
                ):
                    # same digest, tested and attested before: only the tags are refreshed
                    attestations: tuple[Attestation, ...] = ()
                    seen = _observation(built, report=None)
                else:
                    seen = _observation(built, report=_run_tests(built))
                    attestations = attestations_for(seen, signer)
                result = push_image(seen, attestations, client=client, destination=destination)
                console.print(
                    f"published {built.label} as {', '.join(result.tags)}: {result.reference} "
                    f"({result.image_blobs_sent} new image blobs, {result.attestations} "
                    f"attestations, {result.uploaded_bytes / 1024**2:.2f} MiB sent)",
                    soft_wrap=True,
                    highlight=False,
                )


def _run_tests(built: BuiltVariant) -> dict[str, Any] | None:
    """Run the image's tests on this host's arch; refuse to publish when one fails."""
    from kiln.sandbox.unpack import host_arch

    arch = host_arch()
    if arch not in {i.arch for i in built.image.images}:
        return None
    layout = built.image.layout
    if not check_layout(layout, arch=arch, tag=built.image.tag):
        raise PolicyError(f"{built.label}: image tests failed; nothing was pushed")
    report: dict[str, Any] = json.loads((layout / CTRF_REPORT).read_bytes())
    return report


def _observation(built: BuiltVariant, *, report: dict[str, Any] | None) -> BuildObservation:
    from kiln.pipeline.publish import BuildObservation
    from kiln.sandbox.unpack import host_arch

    return BuildObservation(
        loaded=built.loaded,
        lock=built.lock,
        variant=built.variant,
        built=built.image,
        started_on=built.started_on,
        finished_on=built.finished_on,
        test_report=report,
        options={"tests_ran_on": host_arch() if report is not None else "none"},
    )
