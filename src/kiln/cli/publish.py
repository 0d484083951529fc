"""``kiln publish``: build, test, sign, attest and push images with their attestations."""

# The registry, attestation and SBOM stacks load inside the command so that other
# commands start fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kiln.cli.app import app, console, err_console
from kiln.cli.attest import Keyless, KeyOption, PasswordFile, bundle_signer
from kiln.cli.build import (
    DEFAULT_OUTPUT,
    BuildOptions,
    BuiltVariant,
    _csv,
    build_spec,
    check_layout,
    report_name,
)
from kiln.errors import EnvironmentProblem, PolicyError

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
                    seen = _observation(built, reports={})
                else:
                    seen = _observation(built, reports=_run_tests(built))
                    attestations = attestations_for(seen, signer)
                result = push_image(seen, attestations, client=client, destination=destination)
                console.print(
                    f"published {built.label} as {', '.join(result.tags)}: {result.reference} "
                    f"({result.image_blobs_sent} new image blobs, {result.attestations} "
                    f"attestations, {result.uploaded_bytes / 1024**2:.2f} MiB sent)",
                    soft_wrap=True,
                    highlight=False,
                )


def _run_tests(built: BuiltVariant) -> dict[str, dict[str, Any]]:
    """Run the image's tests on every platform it has (another architecture's through
    qemu-user); refuse to publish when one fails. A platform this machine cannot run is
    published without a test report, and says so."""
    from kiln.isolation.emulation import binfmt_rule

    reports: dict[str, dict[str, Any]] = {}
    layout = built.image.layout
    for image in built.image.images:
        try:
            binfmt_rule(image.arch, purpose=f"testing the {image.arch} image {built.label}")
        except EnvironmentProblem as exc:
            err_console.print(
                f"warning: {exc}; linux/{image.arch} is published without a test report",
                markup=False,
                highlight=False,
            )
            continue
        if not check_layout(layout, arch=image.arch, tag=built.image.tag):
            raise PolicyError(
                f"{built.label}: image tests failed on linux/{image.arch}; nothing was pushed"
            )
        report_path = layout / report_name(image.arch)
        reports[image.arch] = json.loads(report_path.read_bytes())
    return reports


def _observation(built: BuiltVariant, *, reports: dict[str, dict[str, Any]]) -> BuildObservation:
    from kiln.pipeline.publish import BuildObservation

    return BuildObservation(
        loaded=built.loaded,
        lock=built.lock,
        variant=built.variant,
        built=built.image,
        started_on=built.started_on,
        finished_on=built.finished_on,
        test_reports=reports,
        options={"tests_ran_on": ",".join(sorted(reports)) or "none"},
    )
