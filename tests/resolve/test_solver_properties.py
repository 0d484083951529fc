"""Properties of the resolver on generated universes (hypothesis, bounded).

Whatever the universe: the result is closed under Depends/Pre-Depends (or the edge is
recorded as cut), holds no conflicting pair, never contains an excluded package, gives
every package a why-chain (from a requested package, or from one apt would keep back),
does not depend on input order, and a failure is always a ``ResolutionError``.
"""

from __future__ import annotations

import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from kiln.debian.model import BinaryPackage
from kiln.debian.version import satisfies
from kiln.resolve import ResolutionError, resolve
from kiln.resolve._relations import Alternative, parse_provides, parse_relations
from resolve.resolve_universe import MemoryUniverse

REAL = [f"pkg{i}" for i in range(8)]
VIRTUAL = ["virt-a", "virt-b"]
MISSING = ["gone"]

relations = st.builds(
    lambda name, op, version: f"{name} ({op} {version})" if op else name,
    st.sampled_from(REAL * 3 + VIRTUAL * 2 + MISSING),
    st.sampled_from([None] * 6 + [">=", "<<", "="]),
    st.sampled_from(["1", "2", "3"]),
)
or_groups = st.lists(relations, min_size=1, max_size=3).map(" | ".join)


@st.composite
def stanzas(draw: st.DrawFn) -> list[str]:
    out = []
    for name in REAL:
        lines = [f"Package: {name}", f"Version: {draw(st.sampled_from(['1', '2', '3']))}"]
        depends = draw(st.lists(or_groups, max_size=2))
        if depends:
            lines.append("Depends: " + ", ".join(depends))
        if draw(st.integers(0, 3)) == 0:
            lines.append("Pre-Depends: " + draw(or_groups))
        provided = [
            f"{virtual} (= {version})" if version else virtual
            for virtual in draw(st.lists(st.sampled_from(VIRTUAL), max_size=2, unique=True))
            for version in [draw(st.sampled_from([None, "1", "2"]))]
        ]
        if provided:
            lines.append("Provides: " + ", ".join(provided))
        if draw(st.integers(0, 7)) == 0:
            lines.append("Conflicts: " + draw(relations))
        if draw(st.integers(0, 9)) == 0:
            lines.append("Breaks: " + draw(relations))
        out.append("\n".join(lines) + "\n")
    return out


def _matches(pkg: BinaryPackage, alt: Alternative) -> bool:
    if pkg.name == alt.name and satisfies(pkg.version, alt.op, alt.version):
        return True
    for provide in parse_provides(pkg):
        if provide.name != alt.name:
            continue
        if alt.op is None or (
            provide.version is not None and satisfies(provide.version, alt.op, alt.version)
        ):
            return True
    return False


@settings(max_examples=100, deadline=None)
@given(
    stanzas(),
    st.lists(st.sampled_from(REAL), min_size=1, max_size=3),
    st.lists(st.sampled_from(REAL + VIRTUAL), max_size=2),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_resolution_invariants(
    texts: list[str],
    requested: list[str],
    exclude: list[str],
    use_exclude: bool,
    rng: random.Random,
) -> None:
    excluded = sorted(set(exclude) - set(requested)) if use_exclude else []
    universe = MemoryUniverse.from_stanzas("\n".join(texts))
    try:
        result = resolve(requested, universe, exclude=excluded, drop_install_time_only=False)
    except ResolutionError as error:
        event(f"fails: {type(error).__name__}")
        return
    event(f"resolves {min(len(result.packages), 5)}+ packages, {len(result.cut_edges)} cut")
    selected = {p.name: p for p in result.packages}
    assert list(selected) == sorted(selected)
    assert not set(excluded) & set(selected)
    cut = {(e.from_package, e.relation) for e in result.cut_edges}
    for pkg in result.packages:
        for field, text in (("Pre-Depends", pkg.pre_depends), ("Depends", pkg.depends)):
            for group in parse_relations(pkg, field, text):
                satisfied = any(
                    _matches(other, alt)
                    for alt in group.alternatives
                    for other in selected.values()
                )
                assert satisfied or (pkg.name, str(group)) in cut, (pkg.name, str(group))
        for field, text in (("Conflicts", pkg.conflicts), ("Breaks", pkg.breaks)):
            for group in parse_relations(pkg, field, text):
                for alt in group.alternatives:
                    hits = [o for o in selected.values() if o.name != pkg.name and _matches(o, alt)]
                    assert hits == [], (pkg.name, field, str(alt))
        chain = result.why(pkg.name)
        # Rooted in a requested package, or (as with apt) in one kept back for a
        # conflicting package after it had pulled this one.
        assert chain[0].parent is None or chain[0].parent not in selected
        assert chain[-1].package == pkg.name

    shuffled_texts = list(texts)
    rng.shuffle(shuffled_texts)
    shuffled_request = list(reversed(requested))
    again = resolve(
        shuffled_request,
        MemoryUniverse.from_stanzas("\n".join(shuffled_texts)),
        exclude=list(reversed(excluded)),
        drop_install_time_only=False,
    )
    assert again == result
