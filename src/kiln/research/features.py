"""Features of a candidate commit against an advisory: what the rankers score.

Every feature is generic (no repository, CVE or commit of any data set is named here):
the CVE id or a referenced bug/PR number in the message, a commit the advisory links,
files and code identifiers the description names, security and CWE words, TF-IDF
similarity of the description with the message and with the touched paths, the distance
in days to the publication, whether the commit lies between the last affected and the
first fixed tag, and the commit's size. ``Features.values`` is the numeric vector the
learned ranker reads (``FEATURE_NAMES`` order); ``Features.fired`` names the evidence.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kiln.research.gitrepo import Commit
from kiln.research.record import CveRecord

if TYPE_CHECKING:
    from kiln.research.notes import NoteEntry

SEC_KEYWORDS = (
    "vuln",
    "exploit",
    "attack",
    "secur",
    "xxe",
    "xss",
    "dos",
    "insecur",
    "inject",
    "unsafe",
    "remote execution",
    "malicious",
    "cwe-",
    "overflow",
    "out of bounds",
    "out-of-bounds",
    "use after free",
    "use-after-free",
    "double free",
    "null pointer",
    "crash",
    "leak",
    "denial of service",
    "oob",
    "heap",
    "sanitiz",
    "underflow",
    "infinite loop",
    "uninitiali",
    "bounds check",
    "cve-",
)

# CWE → words a fix for that weakness tends to use (MITRE's names, shortened)
CWE_WORDS: dict[str, tuple[str, ...]] = {
    "CWE-20": ("validat", "check", "invalid"),
    "CWE-22": ("path", "travers", "../"),
    "CWE-59": ("symlink", "link"),
    "CWE-79": ("escape", "xss", "html"),
    "CWE-113": ("header", "crlf", "newline"),
    "CWE-119": ("overflow", "bounds", "buffer", "overread", "overrun"),
    "CWE-120": ("overflow", "buffer", "length"),
    "CWE-121": ("stack", "overflow"),
    "CWE-122": ("heap", "overflow"),
    "CWE-125": ("read", "bounds", "overread", "oob"),
    "CWE-131": ("size", "length", "calculat"),
    "CWE-190": ("integer", "overflow", "wrap"),
    "CWE-191": ("underflow", "integer"),
    "CWE-200": ("leak", "expos", "disclos"),
    "CWE-201": ("leak", "send"),
    "CWE-295": ("certificate", "verify", "cert"),
    "CWE-297": ("hostname", "host", "verify"),
    "CWE-305": ("auth",),
    "CWE-319": ("cleartext", "tls", "ssl"),
    "CWE-326": ("encrypt", "key"),
    "CWE-362": ("race", "lock", "thread"),
    "CWE-369": ("divide", "zero", "division"),
    "CWE-400": ("resource", "limit", "exhaust", "memory", "dos"),
    "CWE-401": ("leak", "free"),
    "CWE-415": ("double free", "free"),
    "CWE-416": ("use after free", "use-after-free", "uaf", "free"),
    "CWE-444": ("smuggl", "request", "header"),
    "CWE-476": ("null", "nullptr", "dereference"),
    "CWE-522": ("credential", "password", "auth"),
    "CWE-601": ("redirect",),
    "CWE-606": ("loop", "limit"),
    "CWE-611": ("entity", "xxe", "external"),
    "CWE-674": ("recursion", "recursive", "depth", "stack"),
    "CWE-680": ("overflow", "integer"),
    "CWE-697": ("compar", "match"),
    "CWE-770": ("limit", "alloc", "memory", "max"),
    "CWE-772": ("leak", "release"),
    "CWE-787": ("write", "overflow", "bounds"),
    "CWE-824": ("uninitiali",),
    "CWE-835": ("loop", "infinite"),
    "CWE-908": ("uninitiali", "init"),
    "CWE-1333": ("regex", "backtrack", "redos"),
}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_CODE_TOKEN = re.compile(
    r"`([^`\s]{3,60})`|\b([A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]+)\b|"
    r"\b([a-z]+[A-Z][A-Za-z0-9]+)\b|\b([A-Za-z_][A-Za-z0-9_]{2,})\(\)"
)
_FILE_IN_TEXT = re.compile(r"\b([\w.-]+\.(?:c|h|cc|cpp|py|js|go|rs|java|rb|pl|sh|in|am|y|l))\b")
_SHA_IN_TEXT = re.compile(r"\b[0-9a-f]{7,40}\b")
_ISSUE_IN_MSG = re.compile(r"(?:#|GH-|gh-|!)(\d{1,7})\b|/(?:issues|pull|pulls)/(\d{1,7})\b")
_NUMBER = re.compile(r"\b(\d{3,10})\b")
_NOT_A_BUG = re.compile(r"(?i)cve-\d{4}-\d{4,}|\b(?:19|20)\d\d/\d{1,2}(?:/\d{1,2})?\b")
_GHSA = re.compile(r"GHSA(?:-[0-9a-z]{4}){3}", re.IGNORECASE)
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "are",
        "was",
        "were",
        "has",
        "have",
        "not",
        "but",
        "its",
        "into",
        "when",
        "which",
        "can",
        "could",
        "may",
        "might",
        "will",
        "would",
        "should",
        "than",
        "then",
        "also",
        "only",
        "such",
        "via",
        "all",
        "any",
        "been",
        "being",
        "other",
        "some",
        "more",
        "most",
        "use",
        "used",
        "uses",
        "using",
        "allows",
        "allow",
        "attacker",
        "attackers",
        "remote",
        "version",
        "versions",
        "before",
        "after",
        "issue",
        "vulnerability",
        "vulnerable",
        "prior",
        "affected",
        "fixed",
        "fix",
        "fixes",
        "through",
    ]
)
_DOC_PATH = re.compile(
    r"(?i)(^|/)(docs?|changes|changelog|news|release[-_]notes|readme|man|tests?|"
    r"\.github|m4|projects|winbuild|packages)(/|\.|$)|\.(md|rst|txt|[1-9]|html|yml|yaml)$"
)
# a message pointing at a security report without naming the CVE id
_SECURITY_REFERENCE = re.compile(
    r"(?i)\b(ghsa|hackerone|h1|security|advisory|vulnerab\w*|cve|reported[- ]by|disclos\w*|"
    r"oss-fuzz|ossfuzz|clusterfuzz|fuzz\w*|asan|ubsan|sanitizer)\b"
)
_TEST_PATH = re.compile(r"(?i)(^|/)(tests?|testing|fuzz\w*|t)(/|$)|test_|_test\.")

FEATURE_NAMES: tuple[str, ...] = (
    "cve_in_message",
    "commit_in_advisory",
    "xref_issue",
    "xref_bug",
    "files_in_description",
    "code_in_message",
    "code_in_paths",
    "words_in_message",
    "sec_keywords",
    "cwe_keywords",
    "tfidf_message",
    "tfidf_message_rank",
    "tfidf_paths",
    "tfidf_paths_rank",
    "log_days_from_published",
    "after_published",
    "within_30_days_before",
    "in_tag_window",
    "near_fixed_tag",
    "log_lines",
    "log_files",
    "only_docs",
    "touches_tests",
    "fix_word",
    "version_bump",
    "security_reference",
    "path_part_in_description",
)


def tokens(text: str) -> list[str]:
    """Lowercase word tokens (identifiers split at ``_``), stop words dropped."""
    words: list[str] = []
    for raw in _WORD.findall(text):
        low = raw.lower()
        parts = [low, *low.split("_")] if "_" in low else [low]
        words.extend(p for p in parts if len(p) > 2 and p not in _STOP)
    return words


def path_tokens(paths: Iterable[str]) -> list[str]:
    """Tokens of file paths (folders, stems, extensions dropped)."""
    words: list[str] = []
    for path in paths:
        for part in re.split(r"[/._-]", path.lower()):
            if len(part) > 2 and part not in _STOP and not part.isdigit():
                words.append(part)
    return words


class Tfidf:
    """TF-IDF vectors over one candidate set (the description is one more document)."""

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(doc))
        n = len(documents) + 1
        self.idf = {term: math.log(n / (1 + count)) + 1.0 for term, count in df.items()}
        self.default_idf = math.log(n) + 1.0

    def vector(self, doc: Sequence[str]) -> dict[str, float]:
        """The unit-length TF-IDF vector of ``doc``."""
        counts = Counter(doc)
        vec = {t: (1 + math.log(c)) * self.idf.get(t, self.default_idf) for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    """Dot product of two unit vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


@dataclass(frozen=True)
class Advisory:
    """What the features need from a record, computed once per CVE."""

    record: CveRecord
    code_tokens: frozenset[str]
    files: frozenset[str]
    words: frozenset[str]
    referenced_shas: frozenset[str]
    named_commits: frozenset[str]  # commit links: the advisory's, a Debian patch's, a PR's
    issue_numbers: frozenset[str]
    bug_numbers: frozenset[str]
    ghsa: frozenset[str]
    cwe_words: tuple[str, ...]
    published: int | None
    fixed_tag_times: tuple[int, ...] = ()
    release_notes: tuple[NoteEntry, ...] = ()  # the project's notes naming the CVE

    @classmethod
    def of(cls, record: CveRecord, *, fixed_tag_times: Sequence[int] = ()) -> Advisory:
        """Extract the advisory's identifiers, files, words and referenced numbers."""
        text = record.text
        code: set[str] = set()
        for groups in _CODE_TOKEN.findall(text):
            code.update(g for g in groups if g and not g.lower().startswith(("cve", "http")))
        files = {f.lower() for f in _FILE_IN_TEXT.findall(text)}
        issues: set[str] = set()
        bugs: set[str] = set()
        for url in record.references:
            parts = urlsplit(url)
            path = parts.path
            m = re.search(r"/(?:issues|pull|pulls|merge_requests|pull-requests)/(\d{1,7})", path)
            if m:
                issues.add(m.group(1))
                continue
            # a CVE id's year and number, and a mailing-list archive's date, are not
            # bug numbers (``CVE-2021-22922.html`` made every 2021 commit "cite" it)
            text_of_url = _NOT_A_BUG.sub(" ", path + "?" + parts.query)
            for number in _NUMBER.findall(text_of_url):
                bugs.add(number)
        shas = set(_SHA_IN_TEXT.findall(text))
        named: set[str] = set()
        for url in record.references:
            named.update(re.findall(r"/commits?/([0-9a-f]{7,40})\b", url))
        shas |= named
        cwe_words = tuple(w for c in record.cwe for w in CWE_WORDS.get(c.upper(), ()))
        published = int(record.published.timestamp()) if record.published else None
        return cls(
            record=record,
            code_tokens=frozenset(code),
            files=frozenset(files),
            words=frozenset(tokens(text)),
            referenced_shas=frozenset(s for s in shas if re.search(r"[a-f]", s)),
            named_commits=frozenset(named),
            issue_numbers=frozenset(issues),
            bug_numbers=frozenset(bugs - issues),
            ghsa=frozenset(g.lower() for g in _GHSA.findall(" ".join(record.references))),
            cwe_words=cwe_words,
            published=published,
            fixed_tag_times=tuple(fixed_tag_times),
        )


@dataclass
class Features:
    """One candidate's feature vector and the names of the rules that fired."""

    values: dict[str, float]
    fired: list[str] = field(default_factory=list)

    def vector(self, names: Sequence[str] = FEATURE_NAMES) -> list[float]:
        """Values in ``names`` order (missing ones are 0)."""
        return [self.values.get(name, 0.0) for name in names]

    def copy(self) -> Features:
        """An independent copy (stage 2 adds diff features to copies)."""
        return Features(dict(self.values), list(self.fired))


def _ranks(scores: Sequence[float]) -> list[float]:
    """1/(1 + rank) of each score among ``scores`` (best = 1, ties share the best rank)."""
    ordered = sorted(set(scores), reverse=True)
    position = {s: i for i, s in enumerate(ordered)}
    return [1.0 / (1 + position[s]) if s > 0 else 0.0 for s in scores]


@dataclass
class _Firing:
    """Sets one candidate's feature values and records the evidence of those that fire."""

    values: dict[str, float]
    fired: list[str]

    def __call__(self, name: str, value: float, why: str) -> None:
        self.values[name] = value
        if value:
            self.fired.append(why)


def extract(
    advisory: Advisory, commits: Sequence[Commit], in_window: Sequence[bool]
) -> list[Features]:
    """Features of every candidate commit (the TF-IDF statistics are the set's own)."""
    msg_docs = [tokens(c.message) for c in commits]
    path_docs = [path_tokens(c.files) for c in commits]
    desc = tokens(advisory.record.text)
    tf_msg = Tfidf([*msg_docs, desc])
    tf_path = Tfidf([*path_docs, desc])
    desc_msg = tf_msg.vector(desc)
    desc_path = tf_path.vector(desc)
    sim_msg = [cosine(desc_msg, tf_msg.vector(d)) for d in msg_docs]
    sim_path = [cosine(desc_path, tf_path.vector(d)) for d in path_docs]
    rank_msg = _ranks(sim_msg)
    rank_path = _ranks(sim_path)
    cve = advisory.record.cve.lower()
    out: list[Features] = []
    for i, commit in enumerate(commits):
        values: dict[str, float] = {}
        fired: list[str] = []
        message = commit.message
        low = message.lower()

        fire = _Firing(values, fired)
        fire("cve_in_message", float(cve in low), f"message names {advisory.record.cve}")
        referenced = any(commit.sha.startswith(s) for s in advisory.referenced_shas)
        fire("commit_in_advisory", float(referenced), "the advisory links this commit")
        msg_issues = {a or b for a, b in _ISSUE_IN_MSG.findall(message)}
        shared = msg_issues & advisory.issue_numbers
        fire("xref_issue", float(bool(shared)), f"issue/PR #{','.join(sorted(shared))} cited")
        bug_hits = set(_NUMBER.findall(message)) & advisory.bug_numbers
        ghsa_hit = any(g in low for g in advisory.ghsa)
        fire(
            "xref_bug",
            float(bool(bug_hits) or ghsa_hit),
            f"bug {','.join(sorted(bug_hits)) or 'advisory id'} cited",
        )
        names = {p.rsplit("/", 1)[-1].lower() for p in commit.files}
        file_hits = names & advisory.files
        fire("files_in_description", float(bool(file_hits)), f"changes {', '.join(file_hits)}")
        code_hits = {t for t in advisory.code_tokens if t in message}
        fire("code_in_message", float(min(len(code_hits), 3)), f"message: {', '.join(code_hits)}")
        joined = "\n".join(commit.files)
        path_hits = {t for t in advisory.code_tokens if len(t) > 3 and t.lower() in joined.lower()}
        fire("code_in_paths", float(bool(path_hits)), f"paths: {', '.join(path_hits)}")
        shared_words = advisory.words & set(msg_docs[i])
        fire(
            "words_in_message",
            float(min(len(shared_words), 10)) / 10,
            f"{len(shared_words)} advisory words",
        )
        sec = [k for k in SEC_KEYWORDS if k in low]
        fire("sec_keywords", float(min(len(sec), 3)), f"security words: {', '.join(sec)}")
        cwe = sorted({w for w in advisory.cwe_words if w in low})
        fire("cwe_keywords", float(min(len(cwe), 3)), f"CWE words: {', '.join(cwe)}")
        fire("tfidf_message", sim_msg[i], f"text similarity {sim_msg[i]:.2f}")
        values["tfidf_message_rank"] = rank_msg[i]
        fire("tfidf_paths", sim_path[i], f"path similarity {sim_path[i]:.2f}")
        values["tfidf_paths_rank"] = rank_path[i]
        if advisory.published is not None:
            days = (commit.time - advisory.published) / 86400
            values["log_days_from_published"] = math.log1p(abs(days))
            values["after_published"] = float(days > 0)
            fire("within_30_days_before", float(-30 <= days <= 1), "committed just before")
        fire("in_tag_window", float(in_window[i]), "between last affected and first fixed tag")
        if advisory.fixed_tag_times:
            gap = (
                min((t - commit.time) / 86400 for t in advisory.fixed_tag_times if t >= commit.time)
                if any(t >= commit.time for t in advisory.fixed_tag_times)
                else 1e9
            )
            fire("near_fixed_tag", float(0 <= gap <= 45), "shortly before the fixed release")
        values["log_lines"] = math.log1p(commit.added + commit.deleted)
        values["log_files"] = math.log1p(len(commit.files))
        code_files = [f for f in commit.files if not _DOC_PATH.search(f)]
        values["only_docs"] = float(bool(commit.files) and not code_files)
        values["touches_tests"] = float(any(_TEST_PATH.search(f) for f in commit.files))
        values["fix_word"] = float(bool(re.search(r"(?i)\b(fix|prevent|avoid|check)", message)))
        values["version_bump"] = float(
            bool(re.search(r"(?i)^(release|bump|version|update version|prepare)\b", message))
        )
        refs = sorted({m.lower() for m in _SECURITY_REFERENCE.findall(message)})
        fire(
            "security_reference",
            float(min(len(refs), 3)),
            f"refers to a security report: {', '.join(refs)}",
        )
        parts = set(path_tokens(code_files))
        part_hits = sorted(parts & advisory.words)
        fire(
            "path_part_in_description",
            float(min(len(part_hits), 3)),
            f"touches the component {', '.join(part_hits[:3])}",
        )
        out.append(Features(values=values, fired=fired))
    return out


DIFF_FEATURE_NAMES: tuple[str, ...] = (
    "code_in_diff",
    "words_in_functions",
    "tfidf_diff",
    "tfidf_diff_rank",
    "adds_check",
    "diff_truncated",
    "code_in_hunk_headers",
    "cwe_code_added",
    "words_in_added",
    "stage1_rank",
)
# CWE → code a fix for that weakness tends to add (size checks for overflows, escaping
# for injections, ...): matched against the diff's added lines, case-insensitively.
_OVERFLOW_CODE = ("len", "size", "max", "limit", "memcpy", "overflow", "bounds", ">=", "<=")
_CWE_CODE: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("CWE-119", "CWE-120", "CWE-121", "CWE-122", "CWE-125", "CWE-131", "CWE-787"),
        _OVERFLOW_CODE,
    ),
    **dict.fromkeys(("CWE-190", "CWE-191", "CWE-680"), ("_max", "overflow", "size_t", "> ")),
    **dict.fromkeys(
        ("CWE-400", "CWE-770", "CWE-674", "CWE-606", "CWE-835"), ("max", "limit", "depth", "count")
    ),
    **dict.fromkeys(("CWE-416", "CWE-415", "CWE-401", "CWE-772"), ("free", "= null", "null;")),
    **dict.fromkeys(("CWE-476", "CWE-824", "CWE-908"), ("null", "!", "init", "memset")),
    **dict.fromkeys(
        ("CWE-79", "CWE-74", "CWE-77", "CWE-78", "CWE-89", "CWE-93", "CWE-113", "CWE-444"),
        ("escape", "quote", "\\r", "\\n", "valid", "reject", "invalid"),
    ),
    **dict.fromkeys(("CWE-22", "CWE-59"), ("..", "/", "symlink", "path")),
    **dict.fromkeys(
        ("CWE-295", "CWE-297", "CWE-305", "CWE-287", "CWE-522", "CWE-200", "CWE-201"),
        ("verify", "cert", "host", "auth", "password", "credential", "strcmp", "case"),
    ),
}
_HUNK_FUNC = re.compile(r"^@@[^@]*@@\s*(.*)$", re.MULTILINE)
_CHECK = re.compile(
    r"^\+.*\b(if|while)\s*\(.*(len|size|count|max|min|NULL|<|>|overflow|limit)", re.MULTILINE
)


def diff_tokens(diff: str) -> list[str]:
    """Tokens of a diff's changed lines and hunk headers (file headers dropped)."""
    lines = [
        line[1:]
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return tokens("\n".join(lines) + "\n" + "\n".join(_HUNK_FUNC.findall(diff)))


def extract_diff(
    advisory: Advisory, features: Sequence[Features], diffs: Sequence[str | None]
) -> None:
    """Add the diff features to ``features`` (one diff per candidate; None: unreadable),
    which are stage 1's first candidates in its order (``stage1_rank``: 1 for the first,
    1/2 for the second, ...)."""
    for i, f in enumerate(features):
        f.values["stage1_rank"] = 1.0 / (1 + i)
    docs = [diff_tokens(d) if d else [] for d in diffs]
    desc = tokens(advisory.record.text)
    tf = Tfidf([*docs, desc])
    desc_vec = tf.vector(desc)
    sims = [cosine(desc_vec, tf.vector(d)) if d else 0.0 for d in docs]
    ranks = _ranks(sims)
    cwe_code = {w for c in advisory.record.cwe for w in _CWE_CODE.get(c.upper(), ())}
    for f, diff, sim, r in zip(features, diffs, sims, ranks, strict=True):
        text = diff or ""
        hits = {t for t in advisory.code_tokens if t in text}
        f.values["code_in_diff"] = float(min(len(hits), 3))
        if hits:
            f.fired.append(f"diff: {', '.join(sorted(hits))}")
        funcs = set(tokens(" ".join(_HUNK_FUNC.findall(text))))
        shared = funcs & advisory.words
        f.values["words_in_functions"] = float(min(len(shared), 3))
        if shared:
            f.fired.append(f"changes functions named like {', '.join(sorted(shared))}")
        f.values["tfidf_diff"] = sim
        f.values["tfidf_diff_rank"] = r
        if sim:
            f.fired.append(f"diff similarity {sim:.2f}")
        f.values["adds_check"] = float(min(len(_CHECK.findall(text)), 3))
        f.values["diff_truncated"] = float(diff is None)
        headers = "\n".join(_HUNK_FUNC.findall(text))
        header_hits = {t for t in advisory.code_tokens if t in headers}
        f.values["code_in_hunk_headers"] = float(min(len(header_hits), 3))
        if header_hits:
            f.fired.append(f"changes the function {', '.join(sorted(header_hits))}")
        added = "\n".join(
            line[1:].lower()
            for line in text.splitlines()
            if line.startswith("+") and not line.startswith("+++")
        )
        cwe_hits = sorted({w for w in cwe_code if w in added})
        f.values["cwe_code_added"] = float(min(len(cwe_hits), 5)) / 5
        added_words = set(tokens(added))
        shared_added = advisory.words & added_words
        f.values["words_in_added"] = float(min(len(shared_added), 10)) / 10
