"""The message, path and diff features added for issue #17's second round: each must
fire on the commit carrying the evidence and not on the others."""

from __future__ import annotations

from kiln.errors import Location
from kiln.research.features import Advisory, extract, extract_diff
from kiln.research.gitrepo import Commit
from kiln.research.record import record_from_json
from research.conftest import record_json


def _fake(sha: str, message: str, files: tuple[str, ...]) -> Commit:
    return Commit(
        sha=sha,
        time=1_700_000_000,
        author_time=1_700_000_000,
        message=message,
        files=files,
        added=3,
        deleted=1,
        binary_files=0,
    )


def _advisory(description: str) -> Advisory:
    rec = record_from_json(
        record_json(description=description, cwe=["CWE-787"]), Location("x")
    ).record
    return Advisory.of(rec)


def test_message_and_component_features_fire_only_with_their_evidence() -> None:
    adv = _advisory("A buffer overflow in the socks proxy handshake of demo.")
    commits = [
        _fake(
            "a" * 40,
            "socks: reject long hostnames\n\nReported-by: x via HackerOne",
            ("lib/socks.c",),
        ),
        _fake("b" * 40, "docs: typo", ("docs/FAQ",)),
    ]
    first, second = extract(adv, commits, [False, False])
    assert first.values["security_reference"] >= 2  # "reported-by", "hackerone"
    assert first.values["path_part_in_description"] == 1  # lib/socks.c ↔ "socks" below
    assert second.values["security_reference"] == 0
    assert second.values["path_part_in_description"] == 0


def test_diff_features_read_hunk_headers_and_cwe_code() -> None:
    adv = _advisory("Heap overflow in `parse_header` when the length exceeds the buffer.")
    commits = [_fake("a" * 40, "m", ("src/p.c",)), _fake("b" * 40, "m", ("src/q.c",))]
    feats = extract(adv, commits, [False, False])
    fix = (
        "diff --git a/src/p.c b/src/p.c\n--- a/src/p.c\n+++ b/src/p.c\n"
        "@@ -10,1 +10,2 @@ int parse_header(char *buf, size_t len)\n"
        "+    if (len >= sizeof(buffer)) return -1;\n"
    )
    other = (
        "diff --git a/src/q.c b/src/q.c\n--- a/src/q.c\n+++ b/src/q.c\n"
        '@@ -3,1 +3,1 @@ static void log_it(void)\n-    puts("a");\n+    puts("b");\n'
    )
    extract_diff(adv, feats, [fix, other])
    assert feats[0].values["code_in_hunk_headers"] == 1
    assert feats[0].values["cwe_code_added"] > 0
    assert feats[0].values["words_in_added"] > 0
    assert feats[1].values["code_in_hunk_headers"] == 0
    assert feats[1].values["cwe_code_added"] == 0
    assert "changes the function parse_header" in feats[0].fired
