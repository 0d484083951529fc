"""``kiln registry``: debug commands over the OCI distribution client.

``inspect`` prints a manifest (verified against its digest), ``referrers`` lists what
is attached to an image, ``push``/``pull`` move OCI image layouts. Credentials come
from ``KILN_REGISTRY_USERNAME``/``KILN_REGISTRY_PASSWORD`` or Docker's config.json.
"""

# ruff: noqa: PLC0415
# (the registry client loads inside the commands: `kiln --help` stays quick)

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app, console

if TYPE_CHECKING:
    from kiln.registry import Reference, RegistryClient

registry_app = typer.Typer(help="Talk to an OCI registry (debugging aid).", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

RefArg = Annotated[str, typer.Argument(help="HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]")]
Insecure = Annotated[bool, typer.Option("--insecure", help="plain HTTP to a non-loopback registry")]


def _client(reference: Reference, insecure: bool) -> RegistryClient:
    from kiln.registry import RegistryClient

    return RegistryClient.for_host(reference.registry, insecure=insecure)


@registry_app.command()
def inspect(reference: RefArg, insecure: Insecure = False) -> None:
    """Print a manifest or index with its digest and media type."""
    from kiln.registry import Reference

    ref = Reference.parse(reference)
    with _client(ref, insecure) as client:
        manifest = client.get_manifest(ref.repository, ref.digest or ref.identifier)
    console.print(f"digest: {manifest.digest}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"mediaType: {manifest.media_type}", markup=False, highlight=False, soft_wrap=True
    )
    console.print(
        json.dumps(json.loads(manifest.data), indent=2),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@registry_app.command()
def referrers(
    reference: RefArg,
    artifact_type: Annotated[
        str | None, typer.Option("--artifact-type", help="only this artifactType")
    ] = None,
    insecure: Insecure = False,
) -> None:
    """List the artifacts attached to an image (referrers API or tag fallback)."""
    from kiln.registry import Reference, list_referrers

    ref = Reference.parse(reference)
    with _client(ref, insecure) as client:
        subject = ref.digest or client.get_manifest(ref.repository, ref.identifier).digest
        found = list_referrers(client, ref.repository, subject, artifact_type=artifact_type)
    console.print(f"referrers of {subject}: {len(found)}", markup=False, soft_wrap=True)
    for descriptor in found:
        line = f"{descriptor.digest}  {descriptor.artifact_type or '-'}  {descriptor.size}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@registry_app.command()
def push(
    layout: Annotated[Path, typer.Argument(help="OCI image layout directory")],
    reference: RefArg,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="also tag as this")] = None,
    ref_name: Annotated[
        str | None, typer.Option("--ref-name", help="which image of index.json to push")
    ] = None,
    insecure: Insecure = False,
) -> None:
    """Push an OCI image layout; tags are written only after all content is stored."""
    from kiln.registry import Reference, push_layout

    ref = Reference.parse(reference)
    with _client(ref, insecure) as client:
        result = push_layout(client, layout, ref, ref_name=ref_name, extra_tags=tuple(tag or ()))
    stats = result.stats
    console.print(
        f"pushed {result.reference} ({stats.blobs_uploaded} blobs uploaded, "
        f"{stats.blobs_existing} present, {stats.blobs_mounted} mounted, "
        f"{stats.bytes_uploaded} bytes sent)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@registry_app.command()
def pull(
    reference: RefArg,
    destination: Annotated[Path, typer.Argument(help="OCI image layout directory to write")],
    insecure: Insecure = False,
) -> None:
    """Pull an image (all platforms) into an OCI image layout, verifying every byte."""
    from kiln.registry import Reference, pull_layout

    ref = Reference.parse(reference)
    with _client(ref, insecure) as client:
        result = pull_layout(client, ref, destination)
    console.print(
        f"pulled {result.reference} into {result.path} ({result.stats.bytes_downloaded} bytes)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
