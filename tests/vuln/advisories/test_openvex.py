"""OpenVEX per image from the advisory store: schema, determinism, read back by kiln."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiln.errors import InputError
from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind, openvex_for_image
from kiln.vuln.model import Finding, FindingStatus, Severity
from kiln.vuln.vex import apply_vex, load_vex

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FP = {
    "justification": "component_not_present",
    "impact_statement": "libssl3 is not installed in the image",
    "evidence": ["usr/lib/x86_64-linux-gnu/libssl.so.3: absent", "dpkg: no libssl3"],
}


def _fill(store: AdvisoryStore) -> None:
    events = [
        AdvisoryEvent("python", "CVE-2024-0002", EventKind.DETECTION, "zlib1g", time=T0),
        AdvisoryEvent("python", "CVE-2024-0001", EventKind.DETECTION, "libssl3", time=T0),
        AdvisoryEvent(
            "python",
            "CVE-2024-0001",
            EventKind.FALSE_POSITIVE,
            "libssl3",
            FP,
            time=T0 + timedelta(hours=1),
        ),
        AdvisoryEvent(
            "python",
            "CVE-2024-0003",
            EventKind.PENDING_UPSTREAM_FIX,
            "libexpat1",
            {"note": "no patch upstream yet"},
            time=T0 + timedelta(hours=2),
        ),
        AdvisoryEvent(
            "python",
            "CVE-2024-0004",
            EventKind.FIXED,
            "libjq1",
            {"fixed_version": "1.7.1-6+deb13u4+kiln1"},
            time=T0 + timedelta(hours=3),
        ),
        AdvisoryEvent(
            "python",
            "CVE-2024-0004",
            EventKind.PUBLISHED,
            None,
            {"digest": "sha256:" + "12" * 32},
            time=T0 + timedelta(hours=4),
        ),
        AdvisoryEvent("node", "CVE-2024-0001", EventKind.TRUE_POSITIVE, "libssl3", time=T0),
    ]
    for event in events:
        store.append(event)


def test_statements_follow_the_state_and_validate_against_openvex(store: AdvisoryStore) -> None:
    _fill(store)
    raw = openvex_for_image(store, "python", author="kiln test")
    doc: dict[str, Any] = json.loads(raw)
    schema = json.loads((DATA / "openvex-0.2.0.schema.json").read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert errors == []
    by_vuln = {s["vulnerability"]["name"]: s for s in doc["statements"]}
    # a bare detection is news, not a statement
    assert sorted(by_vuln) == ["CVE-2024-0001", "CVE-2024-0003", "CVE-2024-0004"]
    fp = by_vuln["CVE-2024-0001"]
    assert (fp["status"], fp["justification"]) == ("not_affected", "component_not_present")
    assert "libssl.so.3: absent" in fp["impact_statement"]
    assert fp["products"] == [{"@id": "pkg:deb/debian/libssl3"}]
    assert fp["timestamp"] == "2026-03-01T13:00:00Z"
    pending = by_vuln["CVE-2024-0003"]
    assert pending["status"] == "affected"
    assert "no patch upstream yet" in pending["action_statement"]
    fixed = by_vuln["CVE-2024-0004"]
    assert fixed["status"] == "fixed"
    assert fixed["timestamp"] == "2026-03-01T15:00:00Z"  # the fix, not the publication
    assert doc["timestamp"] == "2026-03-01T15:00:00Z"  # newest determining event
    assert doc["author"] == "kiln test"


def test_the_document_is_canonical_and_deterministic(store: AdvisoryStore, tmp_path: Path) -> None:
    _fill(store)
    first = openvex_for_image(store, "python")
    assert (
        first
        == json.dumps(
            json.loads(first), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    # the same events in another database give the same bytes
    other = AdvisoryStore.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        _fill(other)
        assert openvex_for_image(other, "python") == first
    finally:
        other.close()
    # a new determination changes it
    store.append(
        AdvisoryEvent(
            "python",
            "CVE-2024-0003",
            EventKind.FIX_NOT_PLANNED,
            data={"note": "upstream declined"},
            time=T0 + timedelta(days=1),
        )
    )
    assert openvex_for_image(store, "python") != first


def test_an_image_without_determinations_has_no_document(store: AdvisoryStore) -> None:
    _fill(store)
    assert openvex_for_image(store, "nonexistent") == b""
    store.append(AdvisoryEvent("go", "CVE-2024-0009", EventKind.DETECTION))
    assert openvex_for_image(store, "go") == b""


def test_a_fix_reopened_by_a_new_detection_is_no_longer_stated(store: AdvisoryStore) -> None:
    _fill(store)
    assert "CVE-2024-0004" in openvex_for_image(store, "python").decode()
    store.append(
        AdvisoryEvent(
            "python", "CVE-2024-0004", EventKind.DETECTION, "libjq1", time=T0 + timedelta(days=2)
        )
    )
    document = json.loads(openvex_for_image(store, "python"))
    assert "CVE-2024-0004" not in {s["vulnerability"]["name"] for s in document["statements"]}


def test_kilns_vex_loader_reads_it_and_silences_the_finding(
    store: AdvisoryStore, tmp_path: Path
) -> None:
    _fill(store)
    path = tmp_path / "python.openvex.json"
    path.write_bytes(openvex_for_image(store, "python"))
    statements = load_vex(path)
    assert {(s.vulnerability, s.status) for s in statements} == {
        ("CVE-2024-0001", "not_affected"),
        ("CVE-2024-0003", "affected"),
        ("CVE-2024-0004", "fixed"),
    }
    finding = Finding(
        id="CVE-2024-0001",
        aliases=(),
        package_ecosystem="deb",
        package_name="libssl3",
        package_version="3.0.11-1",
        package_purl="pkg:deb/debian/libssl3@3.0.11-1?arch=amd64&distro=debian-13",
        source_name="openssl",
        source_version="3.0.11-1",
        locations=(),
        status=FindingStatus.OPEN,
        fixed_version=None,
        severity=Severity.HIGH,
        severity_source="none",
        cvss_vector=None,
        cvss_score=None,
        kev=False,
        epss=None,
        title="",
        urls=(),
        matches=(),
    )
    (applied,) = apply_vex([finding], statements)
    assert applied.status == FindingStatus.NOT_AFFECTED
    assert applied.vex is not None
    assert applied.vex.justification == "component_not_present"


@pytest.mark.parametrize("author", ["", "   "])
def test_an_empty_author_is_refused(store: AdvisoryStore, author: str) -> None:
    _fill(store)
    with pytest.raises(InputError, match="author"):
        openvex_for_image(store, "python", author=author)


def test_a_long_file_list_is_kept_whole_and_quoted_in_part(store: AdvisoryStore) -> None:
    files = [f"usr/lib/x86_64-linux-gnu/libexample.so.{i}: absent" for i in range(4000)]
    data = {**FP, "evidence": files}
    store.append(AdvisoryEvent("python", "CVE-2024-0007", EventKind.FALSE_POSITIVE, "libex1", data))
    (event,) = store.history("python", "CVE-2024-0007")
    assert event.data["evidence"] == files
    (statement,) = json.loads(openvex_for_image(store, "python"))["statements"]
    assert files[19] in statement["impact_statement"]
    assert files[20] not in statement["impact_statement"]
    assert statement["impact_statement"].endswith("; and 3980 more")
