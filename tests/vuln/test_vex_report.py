"""VEX reading/applying/writing and the report formats (SARIF and CycloneDX validated
against their official schemas)."""

from __future__ import annotations

import gc
import io
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from rich.console import Console

from kiln.errors import EnvironmentProblem
from kiln.vuln.db import VulnData, VulnDB
from kiln.vuln.model import FindingStatus
from kiln.vuln.report import FORMATTERS, SCHEMA, result_json
from kiln.vuln.scan import ScanResult, only_fixed, scan_inventory
from kiln.vuln.vex import VexFormatError, VexStatement, load_vex, product_matches, write_openvex

from .conftest import DATA, deb, npm, pypi


class _Distro:
    id = "debian"
    version_id = "12"
    codename = "bookworm"


class _Inventory:
    target = "test-image"
    distro = _Distro()
    packages = (
        pypi("requests", "2.19.0"),
        npm("lodash", "4.17.15"),
        deb("libexpat1", "2.5.0-1", "expat"),
    )


def _openvex(tmp_path: Path, statements: list[dict[str, object]]) -> Path:
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.org/vex/1",
        "author": "Security Team",
        "timestamp": "2024-05-01T00:00:00Z",
        "version": 1,
        "statements": statements,
    }
    p = tmp_path / "vex.json"
    p.write_text(json.dumps(doc))
    return p


def _scan(db: VulnDB, vex: list[VexStatement] | None = None) -> ScanResult:
    return scan_inventory(_Inventory(), db, vex=vex or [])


def test_openvex_not_affected_suppresses_by_alias_and_purl(
    loaded_db: VulnDB, tmp_path: Path
) -> None:
    path = _openvex(
        tmp_path,
        [
            {
                "vulnerability": {"name": "GHSA-x84v-xcm2-53pg"},
                "products": [
                    {"@id": "pkg:oci/app", "subcomponents": [{"@id": "pkg:pypi/requests@2.19.0"}]}
                ],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }
        ],
    )
    result = _scan(loaded_db, load_vex(path))
    f = next(f for f in result.findings if f.id == "CVE-2018-18074")
    assert f.status is FindingStatus.NOT_AFFECTED
    assert f.vex is not None
    assert (f.vex.status, f.vex.justification) == (
        "not_affected",
        "vulnerable_code_not_in_execute_path",
    )
    assert f not in result.active
    assert result_json(result)["findings"][
        [x["id"] for x in result_json(result)["findings"]].index("CVE-2018-18074")
    ]["vex"]["document"] == str(path)


def test_cyclonedx_vex_marks_fixed(loaded_db: VulnDB, tmp_path: Path) -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [
            {
                "bom-ref": "lodash-ref",
                "type": "library",
                "name": "lodash",
                "version": "4.17.15",
                "purl": "pkg:npm/lodash@4.17.15",
            }
        ],
        "vulnerabilities": [
            {
                "id": "CVE-2021-23337",
                "analysis": {"state": "resolved", "detail": "patched in our build"},
                "affects": [{"ref": "lodash-ref"}],
            }
        ],
    }
    p = tmp_path / "bom.vex.json"
    p.write_text(json.dumps(doc))
    result = _scan(loaded_db, load_vex(p))
    f = next(f for f in result.findings if f.id == "CVE-2021-23337")
    assert f.status is FindingStatus.NOT_AFFECTED
    assert f.vex is not None
    assert (f.vex.status, f.vex.impact_statement) == ("fixed", "patched in our build")


def test_hostile_vex_documents(tmp_path: Path) -> None:
    p = _openvex(
        tmp_path,
        [{"vulnerability": {"name": "CVE-1"}, "products": ["pkg:npm/x"], "status": "not_affected"}],
    )
    with pytest.raises(VexFormatError, match="justification or an impact_statement"):
        load_vex(p)
    p = _openvex(
        tmp_path,
        [{"vulnerability": {"name": "CVE-1"}, "products": ["pkg:npm/x"], "status": "pwned"}],
    )
    with pytest.raises(VexFormatError) as err:
        load_vex(p)
    assert "statements.0.status" in str(err.value)
    p.write_text('{"hello": "world"}')
    with pytest.raises(VexFormatError, match="neither OpenVEX"):
        load_vex(p)
    p.write_text("{not json")
    with pytest.raises(VexFormatError, match="not JSON"):
        load_vex(p)


def test_product_matching() -> None:
    assert product_matches("pkg:pypi/Requests", "pkg:pypi/requests@2.19.0")
    assert product_matches(
        "pkg:deb/debian/libexpat1@2.5.0-1",
        "pkg:deb/debian/libexpat1@2.5.0-1?arch=amd64&distro=debian-12",
    )
    assert not product_matches(
        "pkg:deb/debian/libexpat1@2.5.0-2", "pkg:deb/debian/libexpat1@2.5.0-1?arch=amd64"
    )
    assert not product_matches("not a purl", "pkg:npm/lodash@4.17.15")


def test_write_openvex_round_trips(tmp_path: Path) -> None:
    st = VexStatement(
        "CVE-2018-18074",
        frozenset({"PYSEC-2018-28"}),
        ("pkg:pypi/requests@2.19.0",),
        "not_affected",
        "vulnerable_code_not_present",
        None,
        None,
        "2024-01-01T00:00:00Z",
    )
    doc = write_openvex([st], author="kiln", timestamp="2024-01-01T00:00:00Z")
    assert doc == write_openvex([st], author="kiln", timestamp="2024-01-01T00:00:00Z")
    p = tmp_path / "out.json"
    p.write_text(json.dumps(doc))
    (back,) = load_vex(p)
    assert (back.vulnerability, back.aliases, back.products, back.status, back.justification) == (
        st.vulnerability,
        st.aliases,
        st.products,
        st.status,
        st.justification,
    )


def test_sarif_validates_against_the_official_schema(loaded_db: VulnDB, tmp_path: Path) -> None:
    path = _openvex(
        tmp_path,
        [
            {
                "vulnerability": {"name": "CVE-2020-8203"},
                "products": ["pkg:npm/lodash"],
                "status": "not_affected",
                "impact_statement": "not reachable",
            }
        ],
    )
    text = FORMATTERS["sarif"].render(_scan(loaded_db, load_vex(path)))
    assert isinstance(text, str)
    doc = json.loads(text)
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"CVE-2018-18074", "CVE-2021-23337"}
    assert any("suppressions" in r for r in results)
    rules = {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert rules == {r["ruleId"] for r in results}


def test_cyclonedx_1_6_validates_and_is_deterministic(loaded_db: VulnDB) -> None:
    result = _scan(loaded_db)
    text = FORMATTERS["cyclonedx"].render(result)
    assert isinstance(text, str)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    ids = {v["id"] for v in doc["vulnerabilities"]}
    assert {"CVE-2018-18074", "CVE-2021-23337"} <= ids
    refs = {c["bom-ref"] for c in doc["components"]}
    assert all(a["ref"] in refs for v in doc["vulnerabilities"] for a in v["affects"])
    assert text == FORMATTERS["cyclonedx"].render(_scan(loaded_db))


def test_openvex_output_reads_back(loaded_db: VulnDB, tmp_path: Path) -> None:
    text = FORMATTERS["openvex"].render(_scan(loaded_db))
    assert isinstance(text, str)
    p = tmp_path / "scan.vex.json"
    p.write_text(text)
    statements = load_vex(p)
    assert {s.vulnerability for s in statements} >= {"CVE-2018-18074"}
    assert {s.status for s in statements} == {"affected"}


def test_json_report_schema_is_stable(loaded_db: VulnDB) -> None:
    result = _scan(loaded_db)
    doc = json.loads(str(FORMATTERS["json"].render(result)))
    assert doc["schema"] == SCHEMA
    assert list(doc) == [
        "schema",
        "target",
        "distro",
        "package_count",
        "snapshots",
        "summary",
        "findings",
        "warnings",
    ]
    f = doc["findings"][0]
    assert list(f) == [
        "id",
        "aliases",
        "severity",
        "severity_source",
        "cvss",
        "kev",
        "epss",
        "status",
        "fix_available",
        "fixed_version",
        "title",
        "urls",
        "package",
        "matches",
        "vex",
        "fixed_in_unstable",
        "evidence",
    ]
    assert list(f["package"]) == [
        "ecosystem",
        "name",
        "version",
        "purl",
        "source_name",
        "source_version",
        "locations",
    ]
    assert list(f["matches"][0]) == [
        "feed",
        "rule",
        "namespace",
        "searched_package",
        "searched_version",
        "advisory_id",
        "snapshot_id",
    ]
    snapshot_ids = {s["id"] for s in doc["snapshots"]}
    assert all(m["snapshot_id"] in snapshot_ids for x in doc["findings"] for m in x["matches"])
    assert doc["summary"]["total"] == len(doc["findings"])
    # same value as the document kiln built; byte-identical across runs
    assert doc == json.loads(json.dumps(result_json(result)))
    assert str(FORMATTERS["json"].render(_scan(loaded_db))) == str(
        FORMATTERS["json"].render(result)
    )


def test_only_fixed_drops_findings_without_a_fix(loaded_db: VulnDB) -> None:
    result = _scan(loaded_db)
    kept = only_fixed(result)
    assert kept.findings
    assert all(f.fix_available for f in kept.active)


def test_every_format_loads_its_formatter_on_first_lookup() -> None:
    from kiln.vuln.report import CycloneDxFormatter, JsonFormatter

    assert list(FORMATTERS) == ["table", "json", "sarif", "openvex", "cyclonedx"]
    assert len(FORMATTERS) == 5
    assert all(f.name == name for name, f in FORMATTERS.items())
    assert FORMATTERS["json"] is FORMATTERS["json"]
    assert isinstance(FORMATTERS["json"], JsonFormatter)
    assert isinstance(FORMATTERS["cyclonedx"], CycloneDxFormatter)
    assert "xml" not in FORMATTERS


@pytest.mark.parametrize("enabled", [True, False])
def test_a_scan_leaves_the_cycle_collector_as_it_found_it(loaded_db: VulnDB, enabled: bool) -> None:
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        assert _scan(loaded_db).findings
        assert gc.isenabled() is enabled
        with pytest.raises(EnvironmentProblem):  # also when the scan fails
            scan_inventory(_Inventory(), _BrokenDB())
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()


class _BrokenDB(VulnDB):
    def __init__(self) -> None:
        pass

    def load(self, **_: object) -> VulnData:
        raise EnvironmentProblem("the database went away")


def test_the_table_shows_feed_text_as_written(loaded_db: VulnDB) -> None:
    result = _scan(loaded_db)
    hostile = replace(
        result.findings[0], title="overflow in foo[bar] via [/] and :fire: [bold]x[/bold]"
    )
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    console.print(FORMATTERS["table"].render(replace(result, findings=(hostile,))))
    assert "overflow in foo[bar] via [/] and :fire: [bold]x[/bold]" in out.getvalue()


def test_a_packages_own_kiln_fixes_make_its_finding_fixed_and_no_other(loaded_db: VulnDB) -> None:
    # kiln's rebuild of libexpat1 names one of its CVEs in Kiln-Fixes; Debian's data
    # still calls the version affected. A second binary of the same source without the
    # field (not rebuilt) keeps the finding.
    plain = _scan(loaded_db)
    fixed_id = next(f.id for f in plain.active if f.package_name == "libexpat1")
    rebuilt = replace(deb("libexpat1", "2.5.0-1", "expat"), kiln_fixes=(fixed_id,))
    other = deb("libexpat1-dev", "2.5.0-1", "expat")

    class Rebuilt:
        target = "rebuilt-image"
        distro = _Distro()
        packages = (rebuilt, other)

    result = scan_inventory(Rebuilt(), loaded_db)
    mine = next(f for f in result.findings if f.id == fixed_id and f.package_name == "libexpat1")
    assert mine.status is FindingStatus.NOT_AFFECTED
    assert mine.vex is not None
    assert mine.vex.document == "Kiln-Fixes"
    assert "kiln's rebuild" in (mine.vex.impact_statement or "")
    theirs = next(f for f in result.findings if f.id == fixed_id and f.package_name != "libexpat1")
    assert theirs in result.active
    # a user's own statement, with a timestamp, still has the last word
    user = VexStatement(fixed_id, frozenset(), (rebuilt.purl,), "affected", timestamp="2030-01-01")
    again = scan_inventory(Rebuilt(), loaded_db, vex=[user])
    assert any(f.id == fixed_id and f.package_name == "libexpat1" for f in again.active)
