"""The fix-commit finder: collect candidates from every source, extract features, rank.

``find_fix_commits`` runs both rankers on one candidate set so that the bench compares
them on the same commits: ``Ranking.kiln`` (the learned model) and ``Ranking.baseline``
(Prospector's rules). Each ranked candidate carries its score and the features that
fired, which the CLI prints and a pull request quotes as evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kiln.research.features import Advisory, Features, extract, extract_diff
from kiln.research.gitrepo import Commit, GitError, GitRepo
from kiln.research.notes import note_entries
from kiln.research.rank import Ranker, baseline_score, prospector_rules, score_all
from kiln.research.record import CveRecord, whole_ids
from kiln.research.sources import (
    SOURCES,
    CandidateSource,
    SearchContext,
    advisory_ids,
    fixed_tag_times,
)
from kiln.research.versions import TagIndex, advisory_bounds, project_name, with_release_pages


@dataclass(frozen=True)
class Ranked:
    """One candidate in a ranking: the commit, its score and the evidence."""

    commit: Commit
    score: float
    features: Features
    sources: tuple[str, ...]
    rules: dict[str, float]

    def as_json(self) -> dict[str, object]:
        """The candidate as ``kiln research --json`` prints it."""
        return {
            "commit": self.commit.sha,
            "subject": self.commit.subject,
            "score": round(self.score, 4),
            "fired": self.features.fired,
            "prospector_rules": self.rules,
            "sources": list(self.sources),
            "time": self.commit.time,
            "files": list(self.commit.files[:20]),
        }


@dataclass(frozen=True)
class Ranking:
    """Both rankings of one candidate set, best first, and how long finding took."""

    cve: str
    kiln: list[Ranked]
    baseline: list[Ranked]
    candidates: int
    seconds: float


def _merge(
    proposals: Sequence[tuple[Commit, str, bool]],
) -> tuple[list[Commit], list[bool], list[tuple[str, ...]]]:
    order: dict[str, int] = {}
    commits: list[Commit] = []
    window: list[bool] = []
    sources: list[set[str]] = []
    for commit, source, in_window in proposals:
        i = order.get(commit.sha)
        if i is None:
            order[commit.sha] = len(commits)
            commits.append(commit)
            window.append(in_window)
            sources.append({source})
        else:
            window[i] = window[i] or in_window
            sources[i].add(source)
    return commits, window, [tuple(sorted(s)) for s in sources]


@dataclass(frozen=True)
class CandidateSet:
    """Every proposed commit of one CVE with its features and the sources proposing it."""

    advisory: Advisory
    commits: list[Commit]
    features: list[Features]
    sources: list[tuple[str, ...]]


def collect_candidates(
    record: CveRecord, repo: GitRepo, *, sources: Sequence[CandidateSource] = SOURCES
) -> CandidateSet:
    """Run every source on ``repo`` for ``record`` and extract the candidates' features."""
    raw_tags = repo.tags()
    tags = TagIndex.build(raw_tags)
    tag_times = {name: when for name, (_sha, when) in raw_tags.items()}
    record = with_release_pages(record, project_name(repo.name))
    advisory = Advisory.of(record)
    fixed_tags = [t for v in advisory_bounds(record).fixed if (t := tags.tag(v))]
    advisory = dataclasses.replace(
        advisory,
        fixed_tag_times=tuple(fixed_tag_times(tags, tag_times, advisory)),
        release_notes=note_entries(repo, advisory_ids(advisory), ["HEAD", *fixed_tags[:2]]),
    )
    ctx = SearchContext(advisory=advisory, repo=repo, tags=tags, tag_times=tag_times)
    proposals = [
        (p.commit, p.source, p.in_tag_window) for source in sources for p in source.collect(ctx)
    ]
    commits, window, origin = _merge(proposals)
    return CandidateSet(advisory, commits, extract(advisory, commits, window), origin)


def rank(cset: CandidateSet, score: Callable[[Features, Commit], float]) -> list[Ranked]:
    """The candidates by ``score``, best first; ties go to the commit nearest publication."""
    published = cset.advisory.published or 0
    ranked = [
        Ranked(c, score(f, c), f, o, prospector_rules(f, c.message))
        for c, f, o in zip(cset.commits, cset.features, cset.sources, strict=True)
    ]
    ranked.sort(key=lambda r: (-r.score, abs(r.commit.time - published), r.commit.sha))
    return ranked


MAX_DIFF_BYTES = 512 << 10  # of one candidate's diff read for stage 2


def diff_reader(repo: GitRepo) -> Callable[[str], str | None]:
    """A function giving a commit's diff, or None when git cannot show it within bounds."""

    def read(sha: str) -> str | None:
        try:
            return repo.show(sha, max_bytes=MAX_DIFF_BYTES, context=0)
        except GitError:
            return None

    return read


def _with_evidence(r: Ranked, why: str) -> Ranked:
    features = r.features.copy()
    features.fired.insert(0, why)
    return dataclasses.replace(r, features=features)


def named_first(advisory: Advisory, ranked: list[Ranked]) -> list[Ranked]:
    """Commits a commit link names (the advisory's, a Debian patch's ``Origin``, a linked
    pull request's) ahead of the model's order: provenance outranks similarity. The
    development set strips these links, so the model cannot learn their weight."""
    named = advisory.named_commits
    if not named:
        return ranked
    first: list[Ranked] = []
    rest: list[Ranked] = []
    for r in ranked:
        if any(r.commit.sha.startswith(s) for s in named):
            first.append(_with_evidence(r, "a commit link names it: ranked first"))
        else:
            rest.append(r)
    return first + rest


def _moved(
    ranked: list[Ranked], moves: Callable[[Ranked], bool], why: str, *, to_front: bool
) -> list[Ranked]:
    """``ranked`` with the candidates ``moves`` selects ahead of the others
    (``to_front``) or after them, each group in its own order, each moved one carrying
    ``why`` as its first evidence; nothing moves when none or all are selected."""
    picked = [moves(r) for r in ranked]
    if not any(picked) or all(picked):
        return ranked
    moved = [_with_evidence(r, why) for r, p in zip(ranked, picked, strict=True) if p]
    kept = [r for r, p in zip(ranked, picked, strict=True) if not p]
    return moved + kept if to_front else kept + moved


def code_first(ranked: list[Ranked]) -> list[Ranked]:
    """The candidates that change code ahead of those that change only documentation,
    tests, CI or release notes (``only_docs``), each group in its own order: a fix
    changes code, while a commit documenting the option the advisory names, or the
    regression test added after the fix, shares the advisory's words just as well."""
    return _moved(
        ranked,
        lambda r: bool(r.features.values.get("only_docs")),
        "changes only docs/tests: ranked after every code change",
        to_front=False,
    )


def cve_first(advisory: Advisory, ranked: list[Ranked]) -> list[Ranked]:
    """The candidates whose message names the advisory's CVE id ahead of the others,
    each group in its own order. Prospector's strongest rule (weight 64): a project
    that names the id names it in the fix, its backport, its test or its documentation
    (``code_first`` then puts the test and documentation after the code). A learned
    weight cannot be trusted here: how many training repositories name CVE ids in their
    messages decides it, not what the id means."""
    cve = advisory.record.cve
    whole = whole_ids([cve])  # CVE-2024-2379 is not named by CVE-2024-23790
    return _moved(
        ranked,
        lambda r: bool(r.features.values.get("cve_in_message") and whole.search(r.commit.message)),
        f"names {cve}: ranked ahead",
        to_front=True,
    )


def notes_first(advisory: Advisory, ranked: list[Ranked]) -> list[Ranked]:
    """The candidates a release-notes entry naming the CVE names (``notes``: by hash, by
    an issue number their message cites, by their subject) ahead of the others, each
    group in its own order; ``cve_first`` then puts those whose own message names the id
    ahead of them. The project saying which change fixed the CVE is the same kind of
    evidence as its commit message saying so."""
    if not advisory.release_notes:
        return ranked
    why: dict[str, str] = {}
    for r in ranked:
        for entry in advisory.release_notes:
            how = entry.names(r.commit)
            if how is not None:
                why[r.commit.sha] = (
                    f"the release notes ({entry.where} at {entry.rev}) on "
                    f"{advisory.record.cve} name it by {how}: ranked ahead"
                )
                break
    if not why or len(why) == len(ranked):
        return ranked
    moved = [_with_evidence(r, why[r.commit.sha]) for r in ranked if r.commit.sha in why]
    return moved + [r for r in ranked if r.commit.sha not in why]


WINDOW_FIRST_TOP = 10  # the candidates tag_window_first reorders: the list a reviewer reads


def tag_window_first(ranked: list[Ranked], top: int = WINDOW_FIRST_TOP) -> list[Ranked]:
    """Among the first ``top`` candidates, those between the last affected and the first
    fixed release's tags (``in_tag_window``) ahead of the others, each group in its own
    order; nothing enters or leaves the first ``top``. "Fixed in X" says the fix is in
    that window (Prospector searches only there); a commit after the fixed release, or
    before the last affected one, that shares the advisory's words is a follow-up or a
    precursor. A window can be wrong (a fix made on a maintenance branch), so this acts
    only inside the first ``top``, never pushing a commit out of them."""
    head = _moved(
        ranked[:top],
        lambda r: not r.features.values.get("in_tag_window"),
        "outside the affected..fixed tag window: after the window's commits",
        to_front=False,
    )
    return head + ranked[top:]


# A project's own release or version-bump commit: "Release v2.13.2", "release-1.34.4",
# "Libarchive 3.7.5dev", "1.23.0 release prep (#641)", "preparing release of 2.6.30",
# "Bump up version number to 1.35.1". A dependency bump ("Bump zlib to 1.2.13") is not
# one: updating a vulnerable dependency may be the fix.
_RELEASE_SUBJECT = re.compile(
    r"""(?ix)^(?:
      (?:[\w.+-]+\s+)?v?\d+(?:\.\d+)+[\w.-]*
    | (?:release|releasing|released|prepar\w*|prep)\b[\s:-]*
      (?:of\s+|for\s+|release\s+(?:of\s+)?|[\w.+-]+-)?v?\d+\.\d+.*
    | (?:[\w.+-]+\s+)?v?\d+(?:\.\d+)+\S*\s+release(?:\s+prep\w*)?
    | release\s+prep\w*\s+for\s+v?\d+(?:\.\d+)+.*
    | (?:bump(?:ing)?|update)\s+(?:up\s+)?(?:the\s+)?(?:package\s+)?version\b.*
    | version\s+bump\b.*
    | bump:\s+towards\b.*
    )$"""
)
_PR_SUFFIX = re.compile(r"\s*\((?:#|gh-)\d+\)\s*$", re.IGNORECASE)
_FIX_WORDS = re.compile(
    r"(?i)\b(?:fix\w*|prevent\w*|avoid\w*|cve-|overflow\w*|leak\w*|crash\w*|secur\w*|vuln\w*)"
)


def is_release_commit(commit: Commit) -> bool:
    """Whether ``commit`` is the project's release or version bump (its subject says so
    and its message names no fix): a release carries fixes made before it, it is not
    one."""
    subject = _PR_SUFFIX.sub("", commit.subject.strip())
    return bool(_RELEASE_SUBJECT.match(subject)) and not _FIX_WORDS.search(commit.message)


def releases_last(ranked: list[Ranked]) -> list[Ranked]:
    """Release and version-bump commits (``is_release_commit``) after every other
    candidate, each group in its own order: they fall inside the tag window and just
    before the fixed release by construction, which is exactly what the date and window
    features reward."""
    return _moved(
        ranked,
        lambda r: is_release_commit(r.commit),
        "a release or version bump: ranked after every other commit",
        to_front=False,
    )


FIX_BESIDE_TEST_SECONDS = 2 * 3600  # a regression test and its fix: one push, not one week


def fix_beside_test_first(ranked: list[Ranked]) -> list[Ranked]:
    """When the first candidate changes only tests (and docs), the code change committed
    nearest to it, within ``FIX_BESIDE_TEST_SECONDS``, takes its place: a regression test
    names the advisory's options and functions just as the fix does, and projects commit
    it beside the fix. Only the first candidate is read; nothing moves otherwise."""
    if not ranked:
        return ranked
    top = ranked[0].features.values
    if not (top.get("only_docs") and top.get("touches_tests")):
        return ranked
    when = ranked[0].commit.time
    near = [
        (abs(r.commit.time - when), i)
        for i, r in enumerate(ranked)
        if not r.features.values.get("only_docs")
        and abs(r.commit.time - when) <= FIX_BESIDE_TEST_SECONDS
    ]
    if not near:
        return ranked
    _gap, i = min(near)
    test = ranked[0].commit.sha[:10]
    partner = _with_evidence(
        ranked[i], f"committed beside {test}, the regression test ranked first"
    )
    return [partner] + [r for j, r in enumerate(ranked) if j != i]


# "(cherry picked from commit X)", "backport X from main", "Backport of X"
_PICKED_FROM = re.compile(
    r"(?i)(?:cherry[- ]picked from(?: commit)?|back-?port(?:ed|s|ing)?(?: of| from)?"
    r"(?: commit)?)\s+([0-9a-f]{7,40})\b"
)


def originals_first(ranked: list[Ranked]) -> list[Ranked]:
    """A commit that a higher-ranked candidate says it was cherry-picked or backported
    from moves up to just above it: the change upstream made first (on its main line)
    is the one advisories and distributions cite, the copy on a release branch the
    sibling."""
    by_prefix: dict[str, list[int]] = {}
    for i, r in enumerate(ranked):
        by_prefix.setdefault(r.commit.sha[:7], []).append(i)
    moves: dict[int, int] = {}  # original's position -> the citing copy's position
    for i, r in enumerate(ranked):
        for cited in _PICKED_FROM.findall(r.commit.message):
            for j in by_prefix.get(cited[:7], ()):
                sha = ranked[j].commit.sha
                if j > i and j not in moves and sha != r.commit.sha and sha.startswith(cited):
                    moves[j] = i
    if not moves:
        return ranked
    before: dict[int, list[Ranked]] = {}
    for j, i in sorted(moves.items()):
        copy = ranked[i].commit.sha[:10]
        before.setdefault(i, []).append(
            _with_evidence(ranked[j], f"{copy} was cherry-picked from it: ranked above it")
        )
    out: list[Ranked] = []
    for i, r in enumerate(ranked):
        if i in moves:
            continue
        out.extend(before.get(i, ()))
        out.append(r)
    return out


SIBLINGS_TOP = 10  # the places a second copy of a change gives up
SIBLINGS_READ = 30  # candidates whose patch ids are compared


def patch_id(diff: str) -> str | None:
    """What ``git patch-id`` computes, from a diff's text: the changed files and their
    added and removed lines with all whitespace dropped, hashed; line numbers, context
    and commit metadata play no part, so the same change cherry-picked to another
    branch has the same id. None for a diff with no changed line."""
    digest = hashlib.sha256()
    changed = False
    for line in diff.splitlines():
        if line.startswith(("+++ ", "--- ")):
            digest.update(b"F" + line[4:].strip().encode("utf-8", "replace") + b"\n")
        elif line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
            changed = True
            digest.update(line[0].encode() + "".join(line[1:].split()).encode() + b"\n")
    return digest.hexdigest() if changed else None


def siblings_after(
    ranked: list[Ranked], diff_of: Callable[[str], str | None], top: int = SIBLINGS_TOP
) -> list[Ranked]:
    """A commit whose change (``patch_id``) is the same as a higher-ranked one's, the
    same fix cherry-picked to a release branch, gives its place in the first ``top`` to
    the next distinct change and goes just after them, naming its twin (a copy already
    below the first ``top`` stays where it is). A project that keeps several branches
    carries one fix up to five times; each copy would push another candidate out of the
    first 10 and tells the reviewer nothing new. Only the first ``SIBLINGS_READ``
    candidates are compared (with a stage 2, their diffs were read for it already); the
    higher-ranked copy stays where the model put it."""
    first: dict[str, str] = {}  # patch id -> the sha of its highest-ranked copy
    twins: dict[int, str] = {}  # position -> the higher copy's sha
    for i, r in enumerate(ranked[:SIBLINGS_READ]):
        diff = diff_of(r.commit.sha)
        pid = patch_id(diff) if diff else None
        if pid is None:
            continue
        if pid in first:
            twins[i] = first[pid]
        else:
            first[pid] = r.commit.sha
    head: list[Ranked] = []  # the first ``top`` distinct changes
    deferred: list[Ranked] = []  # the copies met before the first ``top`` were complete
    i = 0
    while i < len(ranked) and len(head) < top:
        if i in twins:
            why = f"the same change as {twins[i][:10]}, ranked above it: a copy"
            deferred.append(_with_evidence(ranked[i], why))
        else:
            head.append(ranked[i])
        i += 1
    if not deferred:
        return ranked
    return head + deferred + ranked[i:]


def rank_kiln(
    cset: CandidateSet, ranker: Ranker, diff_of: Callable[[str], str | None]
) -> list[Ranked]:
    """kiln's order: stage 1 over every candidate, then stage 2 over the first ``depth``
    with their diffs (``diff_of``); the rest keep stage 1's order below them. Then the
    commits naming the CVE id come first (``cve_first``), release commits last
    (``releases_last``), a first-ranked regression test gives its place to the code
    change committed beside it (``fix_beside_test_first``), code changes before
    docs/tests-only commits (``code_first``), a cherry-pick's original above its copy
    (``originals_first``), a second copy of the same change (a cherry-pick to another
    branch) after the first 10 (``siblings_after``), and the commits a commit link
    names first of all (``named_first``). First of all, inside the first 10, the commits
    of the tag window go ahead of the others (``tag_window_first``)."""
    read: dict[str, str | None] = {}

    def diff_once(sha: str) -> str | None:
        if sha not in read:
            read[sha] = diff_of(sha)
        return read[sha]

    first = rank(cset, lambda f, _c: ranker.stage1.score(f))
    if ranker.stage2 is None or not first:
        return _after_model(cset.advisory, first, diff_once)
    head = [dataclasses.replace(r, features=r.features.copy()) for r in first[: ranker.depth]]
    extract_diff(cset.advisory, [r.features for r in head], [diff_once(r.commit.sha) for r in head])
    published = cset.advisory.published or 0
    scores = score_all(ranker.stage2, [r.features for r in head])
    rescored = [dataclasses.replace(r, score=s) for r, s in zip(head, scores, strict=True)]
    rescored.sort(key=lambda r: (-r.score, abs(r.commit.time - published), r.commit.sha))
    floor = min((r.score for r in rescored), default=0.0)
    tail = [
        dataclasses.replace(r, score=floor - 1 - i) for i, r in enumerate(first[ranker.depth :])
    ]
    return _after_model(cset.advisory, rescored + tail, diff_once)


def _after_model(
    advisory: Advisory, ranked: list[Ranked], diff_of: Callable[[str], str | None]
) -> list[Ranked]:
    ordered = cve_first(advisory, notes_first(advisory, tag_window_first(ranked)))
    ordered = fix_beside_test_first(releases_last(ordered))
    ordered = siblings_after(originals_first(code_first(ordered)), diff_of)
    return named_first(advisory, ordered)


def find_fix_commits(
    record: CveRecord,
    repo: GitRepo,
    ranker: Ranker,
    *,
    sources: Sequence[CandidateSource] = SOURCES,
) -> Ranking:
    """Rank the repository's candidate commits for ``record`` with both rankers."""
    started = time.monotonic()
    cset = collect_candidates(record, repo, sources=sources)
    return Ranking(
        cve=record.cve,
        kiln=rank_kiln(cset, ranker, diff_reader(repo)),
        baseline=rank(cset, lambda f, c: baseline_score(f, c.message)),
        candidates=len(cset.commits),
        seconds=time.monotonic() - started,
    )
