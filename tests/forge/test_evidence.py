"""render_markdown: golden descriptions, hostile feed text made inert, bounded length."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from kiln.errors import InputError
from kiln.forge.evidence import (
    AgentStep,
    CheckResult,
    CveRow,
    Evidence,
    PackageChange,
    PatchOrigin,
    SizeChange,
    escape,
    render_markdown,
)

GOLDEN = Path(__file__).parent / "golden"
HOSTILE = (
    "[click me](https://evil.example/x) <img src=x onerror=alert(1)> <script>alert(2)</script> "
    "| broken | cell\n# injected heading\x1b]0;retitled\x07 ![i](javascript:alert(3)) "
    "www.evil.example mail@evil.example **bold** `code` &amp; <!-- comment"
)


def full_evidence() -> Evidence:
    return Evidence(
        image="python",
        kind="backport",
        generation="3f9a1c",
        cves_before=(
            CveRow(
                "CVE-2025-0001",
                "openssl",
                "3.0.15-1~deb12u1",
                "critical",
                "3.0.16-1~deb12u1",
                True,
                0.9731,
                HOSTILE,
            ),
            CveRow(
                "CVE-2025-0002",
                "libexpat1",
                "2.5.0-1",
                "medium",
                None,
                False,
                0.0012,
                "Expat: stack overflow",
            ),
            CveRow("CVE-2025-0003", "zlib1g", "1:1.2.13.dfsg-1", "low", "1:1.2.13.dfsg-1+kiln1"),
        ),
        cves_after=(
            CveRow("CVE-2025-0002", "libexpat1", "2.5.0-1", "medium", None, False, 0.0012),
        ),
        packages=(
            PackageChange("openssl", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1"),
            PackageChange("zlib1g", "1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+kiln1"),
            PackageChange("libnew1", None, "1.0-1"),
            PackageChange("libold0", "0.9-2", None),
        ),
        sizes=(
            SizeChange("linux/amd64", 31_456_789, 31_460_001),
            SizeChange("linux/arm64", 30_000_000, None),
        ),
        tests=(
            CheckResult("smoke", "pass"),
            CheckResult("tls-handshake", "fail", "exit 1: " + HOSTILE),
        ),
        compat=(
            CheckResult("flask-app", "pass"),
            CheckResult("django-app", "skipped", "not in this image's users"),
        ),
        provenance_digest="sha256:" + "ab" * 32,
        patches=(
            PatchOrigin(
                "CVE-2025-0003.patch",
                {
                    "Origin": "upstream, https://github.com/madler/zlib/commit/0123abc",
                    "Bug-Debian": "https://bugs.debian.org/1090000",
                    "Description": HOSTILE,
                },
                "zlib (1:1.3.dfsg+really1.3.1-1) unstable; urgency=medium — Fix CVE-2025-0003",
            ),
        ),
        agent=(
            AgentStep(
                "read_log", "read 4096 bytes of the failing build log", "sha256:" + "01" * 32
            ),
            AgentStep("edit_file", "edited recipes/zlib.yaml", "sha256:" + "02" * 32),
        ),
        notes=("Built and tested on this machine; nothing published.",),
    )


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KILN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_full_description_matches_the_golden_file() -> None:
    _golden("backport_full.md", render_markdown(full_evidence()))


def test_minimal_description_matches_the_golden_file() -> None:
    _golden("bump_minimal.md", render_markdown(Evidence("base", "bump", "g1")))


def test_hostile_feed_text_renders_inert() -> None:
    html = MarkdownIt("commonmark").enable("table").render(render_markdown(full_evidence()))
    for tag in ("<a ", "<img", "<script", "<h1", "<strong>bold", "<code>code", "<!--"):
        assert tag not in html, tag
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html  # shown as text, not dropped
    assert "\x1b" not in html
    assert "\x07" not in html
    # every table row keeps its column count: a "|" in a title cannot add a cell
    for table in re.findall(r"<table>.*?</table>", html, re.DOTALL):
        widths = {
            row.count("<td") or row.count("<th")
            for row in re.findall(r"<tr>.*?</tr>", table, re.DOTALL)
        }
        assert len(widths) == 1


def test_autolinks_are_broken() -> None:
    text = escape("see https://evil.example and www.evil.example or a@evil.example")
    assert "https://" not in text
    assert "www." not in text
    assert "a@" not in text


def test_a_long_description_is_cut_with_a_note() -> None:
    many = tuple(
        CveRow(f"CVE-2025-{n:05d}", "pkg", "1.0", "high", "1.1", title="x" * 500)
        for n in range(400)
    )
    text = render_markdown(Evidence("python", "bump", "g1", cves_before=many), limit=20_000)
    assert len(text) <= 20_000
    assert "_Truncated:" in text
    assert "limited to 20000 characters" in text
    assert len(render_markdown(Evidence("python", "bump", "g1", cves_before=many[:3]))) < 5_000


def test_checks_and_fixed_cves() -> None:
    evidence = full_evidence()
    assert evidence.cves_fixed == ("CVE-2025-0001", "CVE-2025-0003")
    assert evidence.checks["test:tls-handshake"] == "fail"
    assert not evidence.checks_pass


def test_evidence_round_trips_through_json() -> None:
    evidence = full_evidence()
    data = json.loads(json.dumps(evidence.to_dict()))
    assert Evidence.from_dict(data, where="record") == evidence


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(kind="rewrite"), "kind 'rewrite' is not one of"),
        (
            lambda d: d["cves_before"][0].update(epss="high"),
            r"cves_before\[0\].epss is not a number",
        ),
        (lambda d: d["cves_before"][0].update(kev="yes"), r"cves_before\[0\].kev is not bool"),
        (lambda d: d["tests"][1].update(status="maybe"), r"tests\[1\].status 'maybe'"),
        (lambda d: d["sizes"][0].update(before=True), r"sizes\[0\].before is not int"),
        (
            lambda d: d["patches"][0]["headers"].update(Origin=["x"]),
            r"patches\[0\].headers.Origin is not str",
        ),
        (lambda d: d.pop("image"), "'image'"),
        (lambda d: d.update(packages={}), "packages is not list"),
    ],
)
def test_malformed_evidence_is_an_input_error_naming_the_field(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = json.loads(json.dumps(full_evidence().to_dict()))
    mutate(data)
    with pytest.raises(InputError, match=rf"record: the evidence is malformed: .*{message}"):
        Evidence.from_dict(data, where="record")
