"""SLSA provenance: shape checked with the official in-toto-attestation models."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement as PbStatement

from kiln.attest import (
    BUILD_TYPE,
    PROVENANCE_V1,
    ImageDigests,
    ProvenanceInputs,
    SourceRevision,
    detect_git_source,
    parse_statement,
    provenance_statement,
)
from kiln.errors import InputError

from .helpers import IMAGE


def _official(statement_json: bytes) -> tuple[PbStatement, provenance_pb2.Provenance]:
    """Parse with the in-toto protobuf models; unknown fields are errors."""
    document = json.loads(statement_json)
    pb = json_format.ParseDict(document, PbStatement([], "", {}).pb, ignore_unknown_fields=False)
    statement = PbStatement.copy_from_pb(pb)
    statement.validate()
    provenance = json_format.ParseDict(
        document["predicate"], provenance_pb2.Provenance(), ignore_unknown_fields=False
    )
    return statement, provenance


def test_provenance_validates_with_in_toto_attestation(provenance_inputs: ProvenanceInputs) -> None:
    statement, provenance = _official(provenance_statement(provenance_inputs).to_json())
    assert statement.pb.predicate_type == PROVENANCE_V1 == "https://slsa.dev/provenance/v1"
    for dependency in provenance.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    assert provenance.build_definition.build_type == BUILD_TYPE
    assert provenance.run_details.builder.id == "https://kiln.dev/builders/test/v1"
    metadata = provenance.run_details.metadata
    assert metadata.invocation_id == provenance_inputs.invocation_id
    assert metadata.started_on.ToJsonString() == "2026-11-20T10:00:00Z"
    assert metadata.finished_on.ToJsonString() == "2026-11-20T10:00:42Z"


def test_subjects_are_the_index_and_each_platform_manifest(
    provenance_inputs: ProvenanceInputs,
) -> None:
    statement = provenance_statement(provenance_inputs)
    assert [(s.name, s.oci_digests()) for s in statement.subject] == [
        ("tiny", frozenset({IMAGE.index_digest})),
        ("tiny@linux/amd64", frozenset({IMAGE.manifests["amd64"]})),
        ("tiny@linux/arm64", frozenset({IMAGE.manifests["arm64"]})),
    ]


def test_resolved_dependencies_name_every_deb_the_spec_the_lock_and_inrelease(
    provenance_inputs: ProvenanceInputs,
) -> None:
    predicate = provenance_statement(provenance_inputs).predicate
    dependencies = predicate["buildDefinition"]["resolvedDependencies"]
    spec, lock, release, *debs = dependencies
    assert spec == {
        "name": "images/tiny.yaml",
        "digest": {"sha256": "5" * 64},
        "mediaType": "application/yaml",
    }
    assert lock["name"] == "tiny.lock.json"
    assert lock["digest"] == {"sha256": provenance_inputs.lock.digest.split(":")[1]}
    assert release["digest"] == {"sha256": "b" * 64}
    assert release["name"].startswith("InRelease trixie")
    runtime = {
        (p.name, p.version, p.arch, p.sha256, p.filename)
        for arch in ("amd64", "arm64")
        for p in provenance_inputs.lock.packages("runtime", arch)
    }
    assert len(debs) == len(runtime) == 5  # tzdata (all) appears once
    assert {(d["uri"], d["digest"]["sha256"], d["annotations"]["pool"]) for d in debs} == {
        (
            f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-13"
            + ("&upstream=glibc" if name == "libc6" else ""),
            sha256,
            filename,
        )
        for name, version, arch, sha256, filename in runtime
    }
    assert "bash" not in json.dumps(debs)  # the dev variant's extra package is not in it


def test_parameters(provenance_inputs: ProvenanceInputs) -> None:
    definition = provenance_statement(provenance_inputs).predicate["buildDefinition"]
    assert definition["externalParameters"] == {"spec": "images/tiny.yaml"}
    assert definition["internalParameters"] == {
        "kilnVersion": provenance_inputs.kiln_version,
        "variant": "runtime",
        "archs": ["amd64", "arm64"],
        "sourceDateEpoch": 1763600000,
        "compression": "gzip",
    }


def test_git_source_goes_into_external_parameters(provenance_inputs: ProvenanceInputs) -> None:
    source = SourceRevision(
        uri="git+https://forge.invalid/kiln/images.git",
        revision="0123456789abcdef0123456789abcdef01234567",
        path="images/tiny.yaml",
    )
    predicate = provenance_statement(
        dataclasses.replace(provenance_inputs, source=source)
    ).predicate
    external = predicate["buildDefinition"]["externalParameters"]
    assert external["source"] == {
        "uri": source.uri,
        "revision": source.revision,
        "dirty": False,
    }
    spec = predicate["buildDefinition"]["resolvedDependencies"][0]
    assert spec["uri"] == f"{source.uri}@{source.revision}#images/tiny.yaml"
    _official(provenance_statement(dataclasses.replace(provenance_inputs, source=source)).to_json())


def test_provenance_is_deterministic_and_round_trips(provenance_inputs: ProvenanceInputs) -> None:
    one = provenance_statement(provenance_inputs).to_json()
    assert one == provenance_statement(provenance_inputs).to_json()
    assert parse_statement(one, where="p").to_json() == one


def test_clock_and_option_mistakes_are_refused(provenance_inputs: ProvenanceInputs) -> None:
    naive = dataclasses.replace(provenance_inputs, started_on=dt.datetime(2026, 1, 1))
    with pytest.raises(InputError, match="startedOn has no timezone"):
        provenance_statement(naive)
    backwards = dataclasses.replace(
        provenance_inputs, finished_on=provenance_inputs.started_on - dt.timedelta(seconds=1)
    )
    with pytest.raises(InputError, match="finishedOn is before startedOn"):
        provenance_statement(backwards)
    clash = dataclasses.replace(provenance_inputs, options={"variant": "dev"})
    with pytest.raises(InputError, match="clashes"):
        provenance_statement(clash)


def test_an_arch_missing_from_the_lock_is_an_error(provenance_inputs: ProvenanceInputs) -> None:
    image = ImageDigests("tiny", IMAGE.index_digest, {"riscv64": IMAGE.manifests["amd64"]})
    with pytest.raises(InputError, match="no runtime/riscv64 entry"):
        provenance_statement(dataclasses.replace(provenance_inputs, image=image))


# -- git detection (the orchestrator's edge), with the real git binary ------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    (repo / "images" / "tiny.yaml").write_text("name: tiny\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "spec")
    return repo


def test_detect_git_source_in_a_real_checkout(checkout: Path) -> None:
    found = detect_git_source(checkout / "images" / "tiny.yaml")
    assert found is not None
    assert found.path == "images/tiny.yaml"
    assert len(found.revision) == 40
    assert found.uri == f"git+{checkout.resolve().as_uri()}"
    assert not found.dirty
    (checkout / "images" / "tiny.yaml").write_text("name: changed\n")
    _git(checkout, "remote", "add", "origin", "https://user:s3cret@forge.invalid/kiln.git")
    again = detect_git_source(checkout / "images" / "tiny.yaml")
    assert again is not None
    assert again.dirty
    assert again.uri == "git+https://forge.invalid/kiln.git"  # credentials stripped


def test_no_git_source_outside_a_checkout(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\n")
    assert detect_git_source(spec) is None


def test_git_runner_is_injectable(tmp_path: Path) -> None:
    calls: list[Sequence[str]] = []

    def no_git(args: Sequence[str], cwd: Path) -> str | None:
        calls.append(args)
        return None

    assert detect_git_source(tmp_path / "x.yaml", git=no_git) is None
    assert calls


def test_packages_kiln_rebuilt_carry_their_recipe_and_patches(
    provenance_inputs: ProvenanceInputs,
) -> None:
    tzdata = next(
        p for p in provenance_inputs.lock.packages("runtime", "amd64") if p.name == "tzdata"
    )
    fields = {"Kiln-Recipe": "tzdata sha256:" + "c" * 64, "Kiln-Patches": "0001-x.patch"}
    inputs = dataclasses.replace(provenance_inputs, rebuilt={f"tzdata={tzdata.version}": fields})
    debs = provenance_statement(inputs).predicate["buildDefinition"]["resolvedDependencies"][3:]
    by_name = {d["uri"].split("@")[0].rsplit("/", 1)[-1]: d["annotations"] for d in debs}
    assert by_name["tzdata"]["kilnRecipe"] == fields["Kiln-Recipe"]
    assert by_name["tzdata"]["kilnPatches"] == "0001-x.patch"
    assert "kilnRecipe" not in by_name["libc6"]  # Debian's own packages carry none
