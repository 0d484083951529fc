"""The CVE's text from kiln's vulnerability database (a real migrated SQLite file)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from kiln.research.vulndb import record_from_db
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
