"""``kiln keygen``, ``kiln sign``, ``kiln attest``, ``kiln verify``: keys, signatures, policy.

* ``keygen [--out PREFIX]`` writes ``PREFIX.key`` (encrypted PKCS#8, passphrase from
  ``KILN_KEY_PASSWORD`` or ``--password-file``) and ``PREFIX.pub``;
* ``sign LAYOUT --key KEY`` signs the image index and each platform manifest of an OCI
  layout (an image-signature statement per digest) into Sigstore bundles;
* ``attest LAYOUT PREDICATE.json --key KEY`` wraps an SBOM, VEX document, CTRF test
  report or provenance predicate in a signed statement about the layout's image;
* ``verify TARGET --key PUB`` checks a registry reference (bundles found as OCI
  referrers) or a local layout (``--bundles DIR``) against the verification policy.

``--keyless`` signs through sigstore-python with the CI's ambient OIDC identity instead
of a key (see ``kiln.attest.keyless``). Bundles are written to ``--output DIR``
(default ``LAYOUT/attestations``) as ``*.sigstore.json``.
"""

# kiln.attest (cryptography, sigstore models, the registry client) is imported inside the
# commands so that every other kiln command starts without loading it; typer commands
# take their options as parameters.
# ruff: noqa: PLC0415

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kiln.cli.app import app, console
from kiln.errors import InputError, Location
from kiln.fileio import atomic_write
from kiln.jsonlimits import read_json_file
from kiln.pipeline.signing import bundle_signer

if TYPE_CHECKING:
    from kiln.attest import VerificationReport

# the short names of kiln.attest.policy_file.ATTESTATION_NAMES (a test keeps them equal)
KIND_NAMES = ("provenance", "spdx", "cyclonedx", "vex", "test-report")

PasswordFile = Annotated[
    Path | None,
    typer.Option("--password-file", help="read the key passphrase from this file's first line"),
]
KeyOption = Annotated[
    Path | None, typer.Option("--key", help="private key PEM (encrypted or PKCS#8)")
]
Keyless = Annotated[
    bool, typer.Option("--keyless", help="sign with the CI's ambient OIDC identity (Sigstore)")
]
Output = Annotated[
    Path | None, typer.Option("--output", help="where bundles go (default LAYOUT/attestations)")
]
LayoutArg = Annotated[Path, typer.Argument(help="OCI image layout directory")]
NameOption = Annotated[
    str | None, typer.Option("--name", help="image name in subjects (default: the layout dir)")
]


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="write PREFIX.key and PREFIX.pub")] = Path(
        "kiln"
    ),
    password_file: PasswordFile = None,
) -> None:
    """Create an ECDSA P-256 key pair; the private key encrypted with a passphrase."""
    from kiln.attest import read_password, write_key_pair

    password = read_password(password_file)
    if password is None:
        raise InputError(
            "no passphrase for the new private key",
            hint="set KILN_KEY_PASSWORD or pass --password-file",
        )
    private_path, public_path, pair = write_key_pair(out, password)
    _say(f"private key: {private_path}")
    _say(f"public key:  {public_path}")
    _say(f"key id:      {pair.key_id}")


def _write_bundle(directory: Path, name: str, bundle: bytes) -> Path:
    target = directory / f"{name}.sigstore.json"
    atomic_write(target, bundle)
    return target


@app.command()
def sign(
    layout: LayoutArg,
    key: KeyOption = None,
    keyless: Keyless = False,
    password_file: PasswordFile = None,
    output: Output = None,
    name: NameOption = None,
) -> None:
    """Sign an image: one image-signature bundle for the index and each platform manifest."""
    from kiln.attest import ImageDigests, sign_image

    digests = ImageDigests.from_layout(layout, name=name)
    signer = bundle_signer(key, keyless, password_file)
    directory = output or layout / "attestations"
    labels = {digest: arch.replace("/", "-") for arch, digest in digests.manifests.items()}
    labels[digests.index_digest] = "index" if digests.manifests else "image"
    for attestation in sign_image(digests, signer):
        digest = attestation.attach_to[0]
        path = _write_bundle(directory, f"image-signature-{labels[digest]}", attestation.bundle)
        _say(f"signed {digest} -> {path}")


#: a document given to kiln attest (an SBOM, a test report, VEX): read whole
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


def _load_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    value = read_json_file(path, max_bytes=MAX_DOCUMENT_BYTES, what="the document")
    if not isinstance(value, dict):
        raise InputError("not a JSON object", location=Location(str(path)))
    return value


@app.command()
def attest(
    layout: LayoutArg,
    predicate: Annotated[Path, typer.Argument(help="the predicate document (JSON)")],
    kind: Annotated[
        str | None,
        typer.Option("--type", help=f"{', '.join(KIND_NAMES)} or a predicate type URI"),
    ] = None,
    key: KeyOption = None,
    keyless: Keyless = False,
    password_file: PasswordFile = None,
    output: Output = None,
    name: NameOption = None,
) -> None:
    """Sign a predicate (SBOM, VEX, test report, provenance) about an image layout."""
    from kiln.attest import (
        IMAGE_SIGNATURE,
        ImageDigests,
        detect_predicate_type,
        predicate_name,
        statement_for,
    )
    from kiln.attest.policy_file import ATTESTATION_NAMES, attestation_type

    document = _load_json(predicate)
    if kind is None:
        detected = detect_predicate_type(document)
        if detected is None:
            raise InputError(
                "cannot tell what kind of document this is",
                location=Location(str(predicate)),
                hint=f"pass --type ({', '.join(KIND_NAMES)}) or a predicate type URI",
            )
        predicate_type = detected
    else:
        predicate_type = attestation_type(kind)
    if predicate_type == IMAGE_SIGNATURE:
        raise InputError("image signatures are made by `kiln sign`, not `kiln attest`")
    digests = ImageDigests.from_layout(layout, name=name)
    statement = statement_for(predicate_type, digests.subjects(), document)
    signer = bundle_signer(key, keyless, password_file)
    label = next((k for k, v in ATTESTATION_NAMES.items() if v == predicate_type), "attestation")
    path = _write_bundle(output or layout / "attestations", label, signer.sign_statement(statement))
    _say(f"{predicate_name(predicate_type)} for {digests.index_digest} -> {path}")


def _report(report: VerificationReport) -> None:
    _say(f"verified {report.image_digest} with key {report.key_id}")
    for line in report.outcome.passes:
        _say(f"  ok: {line}")
    for line in report.outcome.warnings:
        _say(f"  warning: {line}")
    for bundle in report.bundles:
        if bundle.problem:
            _say(f"  warning: unreadable bundle: {bundle.problem}")


@app.command()
def verify(
    target: Annotated[str, typer.Argument(help="HOST[:PORT]/REPO[:TAG][@DIGEST] or a layout dir")],
    key: Annotated[Path, typer.Option("--key", help="the signer's PEM public key")],
    bundles: Annotated[
        Path | None, typer.Option("--bundles", help="read bundles from this directory")
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help=f"also require: {', '.join(KIND_NAMES)} or a URI"),
    ] = None,
    builder_id: Annotated[
        list[str] | None, typer.Option("--builder-id", help="allowed provenance builder ids")
    ] = None,
    max_age: Annotated[
        str | None, typer.Option("--max-age", help="newest provenance at most this old (30d)")
    ] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="a policy file (YAML/JSON); flags add to it")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="plain HTTP to a non-loopback registry")
    ] = False,
) -> None:
    """Check signatures, provenance and required attestations against the policy."""
    from kiln.attest import (
        ImageDigests,
        default_policy,
        load_verifier,
        read_bundle_dir,
        verify_image,
        verify_reference,
    )
    from kiln.attest.policy_file import attestation_type, load_policy_file, parse_duration
    from kiln.registry import Reference, RegistryClient

    verifier = load_verifier(key)
    base = load_policy_file(policy_file) if policy_file else None
    required = [
        attestation_type(r)
        for r in (*(base.require_attestations if base else ()), *(require or []))
    ]
    age = max_age or (base.max_age if base else None)
    policy = default_policy(
        required=required,
        builder_ids=builder_id or (base.builder_ids if base else None),
        max_age=parse_duration(age) if age else None,
        now=dt.datetime.now(dt.UTC),
    )
    local = Path(target)
    if local.is_dir():
        digests = ImageDigests.from_layout(local)
        found = read_bundle_dir(bundles or local / "attestations")
        _report(verify_image(found, digests.index_digest, verifier, policy))
        return
    reference = Reference.parse(target)
    with RegistryClient.for_host(reference.registry, insecure=insecure) as client:
        if bundles is not None:
            digest = (
                reference.digest
                or client.get_manifest(reference.repository, reference.identifier).digest
            )
            _report(verify_image(read_bundle_dir(bundles), str(digest), verifier, policy))
            return
        _report(verify_reference(client, reference, verifier, policy))
