"""The CVE's text from kiln's vulnerability database (a real migrated SQLite file)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from kiln.pipeline.backport import UnstableFix
from kiln.research.vulndb import record_from_db, record_from_db_or_unstable
from kiln.vuln.db import VulnDB


def _db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'vuln.db'}"
    VulnDB.open(url).close()
    conn = sqlite3.connect(tmp_path / "vuln.db")
    conn.execute(
        "INSERT INTO snapshot (id, source, digest, created_at, origin, counts) "
        "VALUES (1, 'nvd', 'd', '2026-01-01', 'test', '{}')"
    )
    conn.execute(
        'INSERT INTO nvd_cve (cve, snapshot_id, last_modified, description, cwes, "references",'
        " configurations) VALUES (?, 1, '2026-01-01', ?, ?, ?, '[]')",
        (
            "CVE-2025-49014",
            "jq 1.8.0 has a heap use-after-free in f_strftime.",
            json.dumps(["CWE-416"]),
            json.dumps([{"url": "https://github.com/jqlang/jq/issues/3329", "tags": []}]),
        ),
    )
    conn.commit()
    conn.close()
    return url


def test_nvd_text_cwes_and_references(tmp_path: Path) -> None:
    record = record_from_db("CVE-2025-49014", _db(tmp_path))
    assert record is not None
    assert "use-after-free" in record.description
    assert record.cwe == ("CWE-416",)
    assert record.references == ("https://github.com/jqlang/jq/issues/3329",)


def test_unknown_cve_or_missing_database_is_none(tmp_path: Path) -> None:
    assert record_from_db("CVE-2000-0001", _db(tmp_path)) is None
    assert record_from_db("CVE-2025-49014", f"sqlite:///{tmp_path / 'none.db'}") is None


def _unstable(cve: str, kind: str = "upstream") -> UnstableFix:
    """libxml2's real sid entry for CVE-2026-86138 (2.15.4+dfsg-1), as find_unstable_fix
    reads it."""
    line = (
        "CVE-2026-86138: dict: integer overflow in xmlDictAddQString leading to a "
        "heap-based buffer overflow."
    )
    return UnstableFix(
        source="libxml2", cve=cve, release="trixie",
        release_version="2.12.7+dfsg+really2.9.14-2.1+deb13u3", suite="sid",
        unstable_version="2.15.4+dfsg-1", fixed_version="2.15.4+dfsg-1", kind=kind,  # type: ignore[arg-type]
        patches=(), changelog_line=line,
        changelog_entry=f"libxml2 (2.15.4+dfsg-1) unstable; urgency=high\n\n  * {line}\n\n"
        " -- Aron Xu <aron@debian.org>  Sun, 06 Sep 2026 01:58:14 +0800\n",
        bugs=(), upstream_version="2.15.4+dfsg",
    )  # fmt: skip


def test_without_text_in_the_database_the_unstable_changelog_is_the_record(tmp_path: Path) -> None:
    db = _db(tmp_path)
    cve = "CVE-2026-86138"
    record, note = record_from_db_or_unstable(cve, db, _unstable(cve))
    assert record is not None
    assert record.description.startswith("dict: integer overflow in xmlDictAddQString")
    assert record.published is not None
    assert record.published.year == 2026
    assert [r.end for r in record.ranges] == ["2.15.4"]  # the repack suffix dropped
    assert "using libxml2 2.15.4+dfsg-1's changelog (sid)" in note
    assert note.endswith("fixed upstream in 2.15.4")
    # a fix Debian carries as a patch (same upstream version): no fixed-version bound
    patched, _ = record_from_db_or_unstable(cve, db, _unstable(cve, "patch"))
    assert patched is not None
    assert patched.ranges == ()
    # the database's text wins; nothing at all is None
    nvd, quiet = record_from_db_or_unstable("CVE-2025-49014", db, _unstable("CVE-2025-49014"))
    assert nvd is not None
    assert "use-after-free" in nvd.description
    assert quiet == ""
    assert record_from_db_or_unstable("CVE-2026-1", db, None) == (None, "")
