"""Statements for each predicate kind, and image digests read from real kiln layouts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from assemble.helpers import make_input, member, pkg
from kiln.assemble import build_image
from kiln.attest import (
    CYCLONEDX_1_6,
    OPENVEX_0_2,
    SPDX_2_3,
    ImageDigests,
    Subject,
    make_statement,
    parse_statement,
    sbom_statement,
    statement_for,
    vex_statement,
)
from kiln.errors import InputError, RemoteContentError

from .helpers import IMAGE

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'


def test_sbom_statements_take_their_type_from_the_document() -> None:
    subjects = IMAGE.subjects()
    spdx = sbom_statement(subjects, {"spdxVersion": "SPDX-2.3"})
    cdx = sbom_statement(subjects, {"bomFormat": "CycloneDX", "specVersion": "1.6"})
    assert (spdx.predicate_type, cdx.predicate_type) == (SPDX_2_3, CYCLONEDX_1_6)
    with pytest.raises(InputError, match=r"neither SPDX 2\.3"):
        sbom_statement(subjects, {"bomFormat": "CycloneDX", "specVersion": "1.4"})
    with pytest.raises(InputError, match="is SPDX SBOM, not CycloneDX SBOM"):
        statement_for(CYCLONEDX_1_6, subjects, {"spdxVersion": "SPDX-2.3"})


def test_vex_statement() -> None:
    document = {"@context": "https://openvex.dev/ns/v0.2.0", "statements": []}
    assert vex_statement(IMAGE.subjects(), document).predicate_type == OPENVEX_0_2
    with pytest.raises(InputError, match="not an OpenVEX one"):
        vex_statement(IMAGE.subjects(), {"@context": "https://example.invalid"})


def test_statement_invariants() -> None:
    with pytest.raises(ValueError, match="at least one subject"):
        make_statement([], "https://example.invalid/p", {})
    with pytest.raises(ValueError, match="not 64 lowercase hex"):
        Subject(name="x", digest={"sha256": "ABC"})
    with pytest.raises(ValueError, match="has no ':'"):
        Subject.of("x", "deadbeef")
    with pytest.raises(RemoteContentError, match=r"statement field subject\.0\.digest"):
        parse_statement(
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{}}],'
            b'"predicateType":"p","predicate":{}}',
            where="s",
        )
    with pytest.raises(RemoteContentError, match="statement field predicate"):
        parse_statement(
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":'
            b'{"sha1":"00"}}],"predicateType":"p","predicate":[]}',
            where="s",
        )


def test_image_digests_of_a_real_kiln_layout(tmp_path: Path) -> None:
    base = pkg("base-files", member("usr/lib/os-release", content=OS_RELEASE))
    inputs = [
        make_input(
            (
                dataclasses.replace(
                    base, architecture=arch, control=base.control.replace("amd64", arch)
                ),
            ),
            arch=arch,
        )
        for arch in ("amd64", "arm64")
    ]
    built = build_image(inputs, tmp_path / "tiny")
    from_layout = ImageDigests.from_layout(built.layout, name="tiny")
    assert from_layout == ImageDigests.from_built(built, "tiny")
    assert set(from_layout.manifests) == {"amd64", "arm64"}  # arm64/v8 -> Debian arm64
    assert [s.name for s in from_layout.subjects()] == [
        "tiny",
        "tiny@linux/amd64",
        "tiny@linux/arm64",
    ]


def test_image_digests_refuse_broken_layouts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no oci-layout file"):
        ImageDigests.from_layout(tmp_path)


def _official_statement_check(statement_json: bytes) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.v1.statement import Statement as PbStatement

    pb = json_format.ParseDict(
        json.loads(statement_json), PbStatement([], "", {}).pb, ignore_unknown_fields=False
    )
    PbStatement.copy_from_pb(pb).validate()


def test_every_kind_of_statement_is_a_valid_in_toto_statement() -> None:
    from kiln.attest import ctrf_statement, image_signature_statement
    from kiln.sandbox import ctrf_report

    subjects = IMAGE.subjects()
    statements = [
        image_signature_statement("tiny", IMAGE.index_digest, media_type="m", repository="r/tiny"),
        sbom_statement(subjects, {"spdxVersion": "SPDX-2.3"}),
        sbom_statement(subjects, {"bomFormat": "CycloneDX", "specVersion": "1.6"}),
        vex_statement(subjects, {"@context": "https://openvex.dev/ns/v0.2.0", "statements": []}),
        # the report `kiln test` writes, from the sandbox module that writes it
        ctrf_statement(subjects, ctrf_report([], app_name="tiny")),
    ]
    for statement in statements:
        _official_statement_check(statement.to_json())
