"""Records are a trust boundary: garbage is an InputError naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import InputError, Location
from kiln.research.record import load_record_file, load_records, record_from_json
from kiln.research.versions import TagIndex, advisory_bounds, tag_windows, version_key
from research.conftest import record_json


def test_the_answer_never_reaches_the_record() -> None:
    data = record_json(fix_commits=["a" * 40], flags={"fix_commit_message_mentions_cve": True})
    bench = record_from_json(data, Location("x"))
    assert bench.fix_commits == frozenset({"a" * 40})
    assert bench.leaky
    assert "a" * 40 not in repr(bench.record)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps(record_json(cve="not-a-cve")), "is not a vulnerability id"),
        (json.dumps(record_json(description=5)), "'description' must be a string"),
        (json.dumps(record_json(published="last tuesday")), "is not an ISO 8601 date"),
        (json.dumps(record_json(references_without_commits=[1])), "list of strings"),
        (json.dumps(record_json(cpe_version_ranges="x")), "must be a list"),
        ("[" * 500 + "]" * 500, "deeper than"),
    ],
)
def test_garbage_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "cves.jsonl"
    path.write_text(json.dumps(record_json()) + "\n" + line + "\n")
    with pytest.raises(InputError, match=message) as info:
        load_records(path)
    assert f"{path}:2" in str(info.value)


def test_an_empty_file_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="holds no CVE records"):
        load_records(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="cannot read"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="cannot read"):
        load_record_file(tmp_path / "missing.json")


def test_version_bounds_from_ranges_events_and_text() -> None:
    loc = Location("x")
    rec = record_from_json(
        record_json(
            description="Foo before 2.10.3 and 2.9.10 through 2.9.14 crash.",
            cpe_version_ranges=[{"criteria": "cpe:2.3:a:x:y:1.16.0:*:*:*:*:*:*:*"}],
            affected_versions_cna=["introduced:0", "1.26.5"],
        ),
        loc,
    ).record
    bounds = advisory_bounds(rec)
    assert set(bounds.fixed) == {"1.26.5", "2.10.3"}
    assert set(bounds.last_affected) == {"1.16.0", "2.9.14"}
    cna = record_from_json(record_json(affected_versions_cna=">= 1.32.3, < 1.34.7"), loc).record
    assert "1.34.7" in advisory_bounds(cna).fixed


def test_tags_of_every_style_map_to_versions() -> None:
    assert version_key("curl-7_49_0") == (7, 49)
    assert version_key("v2.9.14") == (2, 9, 14)
    assert version_key("cares-1_16_0") == (1, 16)
    assert version_key("jq-1.7.1") == (1, 7, 1)
    index = TagIndex.build(
        dict.fromkeys(("jq-1.7", "jq-1.7.1", "jq-1.8.0", "jq-1.8.2rc1"), ("0" * 40, 0))
    )
    assert index.tag("1.7.1") == "jq-1.7.1"
    assert index.previous("1.8.0") == "jq-1.7.1"
    assert index.following("1.8.0") == "jq-1.8.2rc1"  # only a pre-release has that number
    rec = record_from_json(record_json(description="jq 1.8.0 and earlier"), Location("x")).record
    assert ["jq-1.8.2rc1", "^jq-1.8.0"] in tag_windows(advisory_bounds(rec), index)


def test_dep3_origin_and_applied_upstream_commits_become_references() -> None:
    from kiln.research.dep3 import commits_in_headers, with_patch_origins
    from kiln.research.features import Advisory

    headers = [
        ("Description", "fix commit 1234567 of the docs"),  # not a provenance field
        ("Origin", "upstream, https://github.com/jqlang/jq/commit/499C91BCA9D4D027"),
        ("Applied-Upstream", "1.8.0, commit:c6e041699d8cd31b97375a2596217aff2cfca85b"),
    ]
    assert commits_in_headers(headers) == [
        "499c91bca9d4d027",
        "c6e041699d8cd31b97375a2596217aff2cfca85b",
    ]
    record = record_from_json(record_json(), Location("x")).record
    extended = with_patch_origins(record, [headers])
    assert Advisory.of(extended).referenced_shas >= {"499c91bca9d4d027"}
    assert with_patch_origins(record, [[("Origin", "vendor")]]) is record


LIBXML2_ENTRY = """libxml2 (2.15.4+dfsg-1) unstable; urgency=high

  * New upstream bug fix release. Closes: #1146744.
    Security fixes:
    - CVE-2026-86138: dict: integer overflow in xmlDictAddQString leading
      to a heap-based buffer overflow.

 -- Aron Xu <aron@debian.org>  Sun, 06 Sep 2026 01:58:14 +0800
"""


def test_a_record_from_the_unstable_changelog_that_names_the_fix() -> None:
    """Real text: libxml2 2.15.4+dfsg-1's entry (sid), when no advisory text is at hand."""
    from kiln.research.dep3 import record_from_changelog
    from kiln.research.features import Advisory

    item = (
        "CVE-2026-86138: dict: integer overflow in xmlDictAddQString leading to a "
        "heap-based buffer overflow."
    )
    record = record_from_changelog(
        "CVE-2026-86138", item=item, entry=LIBXML2_ENTRY, fixed_upstream="2.15.4"
    )
    assert record.description == (
        "dict: integer overflow in xmlDictAddQString leading to a heap-based buffer overflow."
    )
    assert record.published is not None
    assert record.published.isoformat() == "2026-09-06T01:58:14+08:00"
    assert advisory_bounds(record).fixed == ("2.15.4",)
    assert "xmlDictAddQString" in Advisory.of(record).code_tokens
    # a trailer without a readable date, no new upstream version: no date, no bound
    bare = record_from_changelog(
        "CVE-2026-86138", item=item, entry=" -- someone <a@b>  not a date\n", fixed_upstream=None
    )
    assert bare.published is None
    assert bare.ranges == ()


def test_a_release_page_of_the_project_is_a_fixed_version() -> None:
    """A reference to the project's own release (GitHub, GitLab, a tag page) bounds the
    window when the advisory names no version; other projects' pages are not read."""
    from kiln.research.versions import project_name, with_release_pages

    assert project_name("https://github.com/libarchive/libarchive.git") == "libarchive"
    assert project_name("/srv/mirrors/LibXML2.git/") == "libxml2"
    refs = [
        "https://github.com/caddyserver/caddy/releases/tag/v2.7.5",  # another project
        "https://github.com/libarchive/libarchive/releases/tag/v3.7.4",
        "https://gitlab.gnome.org/GNOME/libarchive/-/tags/v3.7.4",  # the same version
        "https://github.com/libarchive/libarchive/releases/tag/latest",  # no version
        "https://github.com/libarchive/libarchive/releases",  # no tag
        "https://github.com/libarchive/libarchive/releases/tag/v3.7.4/../../x",
    ]
    record = record_from_json(
        record_json(description="libarchive Remote Code Execution Vulnerability",
                    cpe_version_ranges=[], references_without_commits=refs),
        Location("t"),
    ).record  # fmt: skip
    assert advisory_bounds(record).fixed == ()
    bounded = with_release_pages(record, "libarchive")
    assert advisory_bounds(bounded).fixed == ("v3.7.4",)
    assert with_release_pages(record, "caddy") != record
    assert with_release_pages(record, "nghttp2") == record
    assert with_release_pages(record, "") == record
    # a version the advisory names already is not added twice
    named = record_from_json(
        record_json(references_without_commits=["https://github.com/d/demo/releases/tag/v1.1"]),
        Location("t"),
    ).record
    assert with_release_pages(named, "demo") == named
