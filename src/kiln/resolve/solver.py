"""The dependency resolver: requested package names + a package universe -> closure.

A pure function (no I/O, no clock) computing what ``apt-get install
--no-install-recommends`` would install into an empty root, so that kiln's lock equals
apt's answer for the same indexes (``tests/resolve/test_apt_peer.py`` checks this on real
package sets). Semantics follow Debian Policy §7 (relationships,
https://www.debian.org/doc/debian-policy/ch-relationships.html) and apt's marking
algorithm (``pkgDepCache::MarkInstall`` in apt-pkg/depcache.cc):

- Only ``Pre-Depends`` and ``Depends`` pull packages; ``Recommends``/``Suggests`` never do,
  and Essential packages are not added unless something depends on them.
- Requested packages are marked first, all of them, so a dependency they satisfy is not
  satisfied again by something else. Then each package's dependencies are processed
  depth-first, in field order (``Pre-Depends`` before ``Depends``), and a package is
  marked before its dependencies are (so dependency cycles are harmless).
- An or-group already satisfied by a marked package is skipped (this is "prefer the
  alternative already selected"). Otherwise the possible solutions are, alternative by
  alternative, the candidate of the named package when it satisfies the version, then
  the packages providing the name (a versioned dependency is only satisfied by a
  versioned provide, ``Provides: foo (= 1.2)``). Within one alternative apt's provider
  order applies (``CompareProviders``): the real package named by the dependency first,
  then Essential providers, then by ``Priority`` (required, important, standard,
  optional, extra); apt breaks remaining ties by its cache id (the later a name is
  first mentioned in the indexes, the higher), which ``apt_order`` reproduces
  (``kiln.resolve.apt_order``); without it kiln takes the first name alphabetically.
  The first solution that can be installed wins; one whose own critical dependencies
  have no candidate at all is skipped (apt's
  ``IsInstallOkDependenciesSatisfiableByCandidates``), and one whose subtree fails is
  rolled back and the next one is tried.
- Only the candidate (highest) version of a name exists, as for apt with default pins.
- Architecture qualifiers (multiarch spec): ``:any`` is satisfied only by a package that
  is ``Multi-Arch: allowed``; ``:native`` and ``:<arch>`` by a package of that
  architecture; ``Architecture: all`` packages count as the native architecture.
- ``Conflicts`` and ``Breaks`` (directly or through ``Provides``, versions respected;
  a package never conflicts with itself, which is what lets a package provide,
  conflict with and replace a virtual name): when a package to install conflicts with
  a selected one, apt keeps the selected one back if it was pulled automatically (what
  relied on it is satisfied again at the end), but not if it is *protected* (requested,
  or the only solution of a protected package's dependency): then the new package is
  not installable, the next alternative is tried, else ``ConflictError`` names both
  packages and the relation.
- ``exclude`` cuts every edge to the excluded names: an or-group is cut when all its
  names (or all the packages that could satisfy it) are excluded, otherwise the other
  alternatives are used. With ``drop_install_time_only``, an or-group that any
  ``INSTALL_TIME_ONLY`` name can satisfy is cut: a dependency that a maintainer-script
  tool satisfies exists for maintainer scripts (``debconf | debconf-2.0``,
  ``systemd | systemd-standalone-sysusers | systemd-sysusers``, ``passwd | adduser``).
  Each cut edge is recorded with its reason.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from kiln.debian.distro import Distro
from kiln.debian.index import PackageUniverse
from kiln.debian.model import BinaryPackage
from kiln.debian.version import satisfies
from kiln.errors import InputError
from kiln.resolve._relations import Alternative, OrGroup, parse_provides, parse_relations
from kiln.resolve.install_time import INSTALL_TIME_ONLY

EXCLUDED_BY_SPEC = "excluded by spec"

_REQUEST_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")
# apt's ``pkgCache::State::VerPriority``: smaller is more important.
_PRIORITY_RANK = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}
# The same few relations (``libc6 (>= 2.38)``) are checked again and again.
_satisfies = lru_cache(maxsize=65536)(satisfies)


class ResolutionError(InputError):
    """The requested packages cannot be resolved into an installable set."""


class UnknownPackageError(ResolutionError):
    """A requested name is neither a package nor a virtual package with one provider."""


class UnsatisfiableError(ResolutionError):
    """A dependency has no installable candidate; the message shows the whole chain."""


class ConflictError(ResolutionError):
    """Two packages that must be installed together conflict or break each other."""


@dataclass(frozen=True)
class CutEdge:
    """A dependency the resolver did not follow: who declared it, the relation, why."""

    from_package: str
    relation: str
    reason: str


@dataclass(frozen=True)
class Pull:
    """Why a package is in the closure: the package and relation that pulled it.

    ``parent`` is ``None`` (and ``relation`` empty) for a requested package. It names a
    package outside the resolved set in one case: apt kept that package back for a
    conflicting one after it had pulled this one, which apt installs all the same.
    """

    package: str
    parent: str | None
    relation: str


@dataclass(frozen=True)
class Resolution:
    """The resolved closure, sorted by package name, with cut edges and pull reasons."""

    packages: tuple[BinaryPackage, ...]
    cut_edges: tuple[CutEdge, ...]
    pulls: tuple[Pull, ...]  # one per selected package, sorted by package name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.packages)

    def why(self, name: str) -> tuple[Pull, ...]:
        """The chain from a requested package down to ``name`` (``kiln lock --why``)."""
        by_name = {p.package: p for p in self.pulls}
        if name not in by_name:
            raise InputError(f"{name!r} is not in the resolved set")
        chain: list[Pull] = []
        current: str | None = name
        while current is not None and current in by_name and len(chain) <= len(by_name):
            pull = by_name[current]
            chain.append(pull)
            current = pull.parent
        return tuple(reversed(chain))


def resolve(
    requested: Sequence[str],
    universe: PackageUniverse,
    *,
    exclude: Collection[str] = (),
    drop_install_time_only: bool,
    distro: Distro | None = None,
    apt_order: Mapping[str, int] | None = None,
) -> Resolution:
    """Resolve ``requested`` and their dependencies against ``universe``.

    ``distro`` only names things in error messages (``debian-13``, its suites).
    ``apt_order`` is apt's cache order of the names (``kiln.resolve.apt_order``): with
    it, ties between equally good providers go the way apt's go; without it, to the
    first name in alphabetical order.
    Raises ``UnknownPackageError``, ``UnsatisfiableError`` or ``ConflictError``.
    """
    label = distro.id if distro is not None else "the archive"
    suites = ", ".join(distro.suites) if distro is not None else "the archive"
    names = sorted(set(requested))
    for name in names:
        if not _REQUEST_RE.match(name):
            raise UnknownPackageError(f"{name!r} is not a valid Debian package name")
    both = sorted(set(names) & set(exclude))
    if both:
        raise ResolutionError(f"{', '.join(both)} is both requested and excluded")
    install_time: dict[str, str] = {}
    if drop_install_time_only:
        install_time = {k: f"install-time only: {v}" for k, v in INSTALL_TIME_ONLY.items()}
    excluded = dict.fromkeys(sorted(exclude), EXCLUDED_BY_SPEC)
    solver = _Solver(universe, excluded, install_time, suites, apt_order or {})
    roots = [_requested_package(name, universe, label) for name in names]
    failure = solver.solve(roots)
    if failure is not None:
        error = ConflictError if failure.conflict else UnsatisfiableError
        raise error(failure.message(), details=list(failure.details))
    return solver.resolution()


def _requested_package(name: str, universe: PackageUniverse, label: str) -> BinaryPackage:
    pkg = universe.get(name)
    if pkg is not None:
        return pkg
    providers = universe.providers(name)
    if len(providers) == 1:  # apt: "Note, selecting 'x' instead of 'y'"
        return providers[0]
    if providers:
        raise UnknownPackageError(
            f"{name!r} is a virtual package in {label} provided by "
            f"{', '.join(p.name for p in providers)}: request one of them"
        )
    close = difflib.get_close_matches(name, list(universe.names()), n=3, cutoff=0.75)
    hint = ""
    if close:
        options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
        hint = f" (did you mean {options}?)"
    raise UnknownPackageError(f"{name!r} is not a package in {label}{hint}")


@dataclass(frozen=True)
class _Failure:
    """Why installing a package failed: the chain down to the failing relation."""

    chain: tuple[str, ...]
    relation: str
    reason: str
    details: tuple[str, ...] = ()
    conflict: bool = False

    def message(self) -> str:
        if self.conflict:
            return f"{' → '.join(self.chain)}: {self.reason}"
        return " → ".join([*self.chain, self.relation, self.reason])


# A step of the depth-first walk: a generator that yields sub-steps and gets their result.
_Step = Generator["_Step", "_Failure | None", "_Failure | None"]


@dataclass(frozen=True)
class _Negative:
    """A ``Conflicts``/``Breaks`` entry of a selected package, indexed by target name."""

    owner: BinaryPackage
    field: str
    alternative: Alternative

    def describe(self, victim: str) -> str:
        verb = "conflicts with" if self.field == "Conflicts" else "breaks"
        return f"{self.owner.name} {verb} {victim} ({self.field}: {self.alternative})"


class _Solver:
    """apt's marking walk over one universe; mutable only inside one ``resolve`` call.

    Every change of the selection goes through a journal so that a failed alternative
    can be rolled back exactly.
    """

    def __init__(
        self,
        universe: PackageUniverse,
        excluded: dict[str, str],
        install_time: dict[str, str],
        suites: str,
        apt_order: Mapping[str, int],
    ) -> None:
        self.universe = universe
        self.apt_order = apt_order
        self.arch = universe.arch
        self.install_time = install_time
        self.cut = {**install_time, **excluded}  # every name no edge may lead to
        self.suites = suites
        self.selected: dict[str, BinaryPackage] = {}
        self.pulls: dict[str, Pull] = {}
        # apt's "protected" packages: requested ones, and the only possible solution of a
        # critical dependency of a protected package. They are never unmarked.
        self.protected: set[str] = set()
        self.provided: dict[str, list[tuple[BinaryPackage, str | None]]] = {}
        self.negatives: dict[str, list[_Negative]] = {}
        self.cut_edges: list[CutEdge] = []
        # Packages kept back for a conflicting one, and why: never selected again, so
        # two packages that keep each other back cannot loop.
        self.kept_back: dict[str, str] = {}
        self.journal: list[tuple[str, BinaryPackage, Pull | None, str]] = []
        # The universe does not change during one resolution.
        self.solution_cache: dict[OrGroup, list[BinaryPackage]] = {}

    # --- state -----------------------------------------------------------------------

    def _apply(self, action: str, pkg: BinaryPackage, pull: Pull | None, note: str) -> None:
        match action:
            case "mark":
                if pull is None:
                    raise AssertionError(f"marking {pkg.name} needs the reason it is pulled")
                self.selected[pkg.name] = pkg
                self.pulls[pkg.name] = pull
                for provide in parse_provides(pkg):
                    self.provided.setdefault(provide.name, []).append((pkg, provide.version))
                for negative in self._negatives_of(pkg):
                    self.negatives.setdefault(negative.alternative.name, []).append(negative)
            case "unmark":
                del self.selected[pkg.name]
                del self.pulls[pkg.name]
                for provide in parse_provides(pkg):
                    self.provided[provide.name].remove((pkg, provide.version))
                for negative in self._negatives_of(pkg):
                    self.negatives[negative.alternative.name].remove(negative)
            case "protect":
                self.protected.add(pkg.name)
            case "unprotect":
                self.protected.discard(pkg.name)
            case "keep-back":
                self.kept_back[pkg.name] = note
            case "unkeep-back":
                del self.kept_back[pkg.name]
            case _:
                raise AssertionError(action)

    def _do(
        self, action: str, pkg: BinaryPackage, pull: Pull | None = None, note: str = ""
    ) -> None:
        self._apply(action, pkg, pull, note)
        self.journal.append((action, pkg, pull, note))

    def _snapshot(self) -> tuple[int, int]:
        return len(self.journal), len(self.cut_edges)

    def _rollback(self, snapshot: tuple[int, int]) -> None:
        undo = {
            "mark": "unmark",
            "unmark": "mark",
            "protect": "unprotect",
            "keep-back": "unkeep-back",
        }
        entries, cuts = snapshot
        while len(self.journal) > entries:
            action, pkg, pull, note = self.journal.pop()
            self._apply(undo[action], pkg, pull, note)
        del self.cut_edges[cuts:]

    def resolution(self) -> Resolution:
        packages = tuple(sorted(self.selected.values(), key=lambda p: p.name))
        edges = tuple(
            sorted(set(self.cut_edges), key=lambda e: (e.from_package, e.relation, e.reason))
        )
        pulls = self._rooted_pulls()
        return Resolution(
            packages=packages, cut_edges=edges, pulls=tuple(pulls[p.name] for p in packages)
        )

    def _rooted_pulls(self) -> dict[str, Pull]:
        """The walk's pulls, with packages whose puller was kept back re-attached.

        When apt keeps back a package for a conflicting one, what it pulled stays
        selected; such a package is attached to the nearest selected package that
        depends on it (breadth-first from the requested ones). One nothing selected
        depends on (apt installs it all the same) keeps its original puller.
        """
        rooted: dict[str, bool] = {}

        def is_rooted(name: str) -> bool:
            trail = []
            current: str | None = name
            while current is not None and current in self.pulls and current not in rooted:
                trail.append(current)
                current = self.pulls[current].parent
                if len(trail) > len(self.pulls):
                    break
            ok = rooted.get(current, False) if current is not None else True
            ok = ok and (current is None or current in self.pulls)
            for item in trail:
                rooted[item] = ok
            return rooted[name]

        pulls = dict(self.pulls)
        orphans = {name for name in self.selected if not is_rooted(name)}
        if not orphans:
            return pulls
        queue = sorted(n for n, p in self.pulls.items() if p.parent is None)
        seen = set(queue)
        while queue and orphans:
            parent = self.selected[queue.pop(0)]
            for group in self._critical_groups(parent):
                for name in sorted(self.selected):
                    if name in seen or not any(
                        self._matches(self.selected[name], alt) for alt in group.alternatives
                    ):
                        continue
                    seen.add(name)
                    queue.append(name)
                    if name in orphans:
                        pulls[name] = Pull(name, parent.name, str(group))
                        orphans.discard(name)
        return pulls

    # --- matching --------------------------------------------------------------------

    def _arch_ok(self, pkg: BinaryPackage, archqual: str | None, *, real: bool) -> bool:
        arch = self.arch if pkg.architecture == "all" else pkg.architecture
        match archqual:
            case None | "native":
                return arch == self.arch
            case "any":
                # The multiarch spec: only a Multi-Arch: allowed package satisfies pkg:any.
                return not real or pkg.multi_arch == "allowed"
            case _:
                return arch == archqual

    def _real_match(self, pkg: BinaryPackage, alt: Alternative) -> bool:
        return (
            pkg.name == alt.name
            and self._arch_ok(pkg, alt.archqual, real=True)
            and _satisfies(pkg.version, alt.op, alt.version)
        )

    @staticmethod
    def _provide_match(provided_version: str | None, alt: Alternative) -> bool:
        if alt.op is None:
            return True
        # Policy §7.5: an unversioned provide never satisfies a versioned relation.
        return provided_version is not None and _satisfies(provided_version, alt.op, alt.version)

    def _matches(self, pkg: BinaryPackage, alt: Alternative) -> bool:
        """Whether ``pkg`` satisfies ``alt``, as itself or through its Provides."""
        if self._real_match(pkg, alt):
            return True
        return self._arch_ok(pkg, alt.archqual, real=False) and any(
            p.name == alt.name and self._provide_match(p.version, alt) for p in parse_provides(pkg)
        )

    def _satisfied_by_selected(self, group: OrGroup) -> bool:
        for alt in group.alternatives:
            pkg = self.selected.get(alt.name)
            if pkg is not None and self._real_match(pkg, alt):
                return True
            for provider, version in self.provided.get(alt.name, ()):
                if self._arch_ok(provider, alt.archqual, real=False) and self._provide_match(
                    version, alt
                ):
                    return True
        return False

    def _candidates(self, alt: Alternative) -> list[BinaryPackage]:
        """Packages satisfying one alternative, in apt's provider order."""
        found: list[BinaryPackage] = []
        real = self.universe.get(alt.name)
        if real is not None and self._real_match(real, alt):
            found.append(real)
        providers = [
            p
            for p in self.universe.providers(alt.name)
            if p.name != alt.name and self._matches(p, alt)
        ]
        providers.sort(key=self._provider_key)
        return found + providers

    def _provider_key(self, pkg: BinaryPackage) -> tuple[bool, int, int, str]:
        """apt's ``CompareProviders`` after the real package: Essential, Priority, cache id."""
        # apt prefers the higher cache id; names apt never saw sort after the others.
        position = self.apt_order.get(pkg.name)
        later_first = -position if position is not None else 0
        return (not pkg.essential, _PRIORITY_RANK.get(pkg.priority, 6), later_first, pkg.name)

    def _solutions(self, group: OrGroup) -> list[BinaryPackage]:
        """Every package that could satisfy ``group``, alternative by alternative."""
        cached = self.solution_cache.get(group)
        if cached is None:
            cached = self.solution_cache[group] = self._find_solutions(group)
        return cached

    def _find_solutions(self, group: OrGroup) -> list[BinaryPackage]:
        seen: set[str] = set()
        solutions = []
        for alt in group.alternatives:
            for pkg in self._candidates(alt):
                if pkg.name not in seen:
                    seen.add(pkg.name)
                    solutions.append(pkg)
        return solutions

    def _negatives_of(self, pkg: BinaryPackage) -> list[_Negative]:
        return [
            _Negative(pkg, field, alt)
            for field, text in (("Conflicts", pkg.conflicts), ("Breaks", pkg.breaks))
            for group in parse_relations(pkg, field, text)
            for alt in group.alternatives
        ]

    def _conflicts(self, pkg: BinaryPackage) -> list[tuple[BinaryPackage, str]]:
        """Selected packages ``pkg`` conflicts with or breaks, or that do so to ``pkg``.

        A package never conflicts with itself (Policy §7.6.2: this is what lets it
        provide, conflict with and replace a virtual name).
        """
        found: list[tuple[BinaryPackage, str]] = []
        for negative in self._negatives_of(pkg):
            alt = negative.alternative
            other = self.selected.get(alt.name)
            if other is not None and other.name != pkg.name and self._real_match(other, alt):
                found.append((other, negative.describe(other.name)))
            for provider, version in self.provided.get(alt.name, ()):
                if provider.name != pkg.name and self._provide_match(version, alt):
                    found.append((provider, negative.describe(provider.name)))
        names = [pkg.name, *(p.name for p in parse_provides(pkg))]
        for name in names:
            for negative in self.negatives.get(name, ()):
                owner = negative.owner
                if owner.name != pkg.name and self._matches(pkg, negative.alternative):
                    found.append((owner, negative.describe(pkg.name)))
        return found

    # --- the walk --------------------------------------------------------------------

    def _critical_groups(self, pkg: BinaryPackage) -> list[OrGroup]:
        return [
            *parse_relations(pkg, "Pre-Depends", pkg.pre_depends),
            *parse_relations(pkg, "Depends", pkg.depends),
        ]

    def _cut_reason(self, group: OrGroup) -> str | None:
        """Why ``group`` is cut: it serves maintainer scripts, or nothing left satisfies it."""
        for name in group.names:
            if name in self.install_time:
                return self.install_time[name]
        if all(name in self.cut for name in group.names):
            return self.cut[group.names[0]]
        solutions = self._solutions(group)
        if solutions and all(s.name in self.cut for s in solutions):
            return self.cut[solutions[0].name]
        return None

    def solve(self, roots: Sequence[BinaryPackage]) -> _Failure | None:
        # apt-get install marks every requested package first, then installs the
        # dependencies of each one.
        for pkg in roots:
            if pkg.name in self.selected:  # two requested virtual names, one provider
                continue
            for _, description in self._conflicts(pkg):
                return _Failure((pkg.name,), "", description, conflict=True)
            self._do("mark", pkg, Pull(pkg.name, None, ""))
            self._do("protect", pkg)
        for pkg in roots:
            failure = _run(self._install_dependencies(pkg, (pkg.name,)))
            if failure is not None:
                return failure
        return _run(self._repair())

    def _repair(self) -> _Step:
        """Satisfy again what an unmarked conflicting package left open (apt's resolver)."""
        for _ in range(len(self.selected) + 1):
            broken = [
                pkg
                for pkg in sorted(self.selected.values(), key=lambda p: p.name)
                if any(
                    not self._satisfied_by_selected(g) and self._cut_reason(g) is None
                    for g in self._critical_groups(pkg)
                )
            ]
            if not broken:
                return None
            for pkg in broken:
                failure = yield self._install_dependencies(pkg, self._chain(pkg.name))
                if failure is not None:
                    return failure
        # Unreachable while kept-back packages stay out; reported, never looped on.
        pkg = broken[0]
        group = next(g for g in self._critical_groups(pkg) if not self._satisfied_by_selected(g))
        return _Failure(
            self._chain(pkg.name), str(group), "cannot be satisfied together with the rest"
        )

    def _chain(self, name: str) -> tuple[str, ...]:
        chain = [name]
        parent = self.pulls[name].parent
        while parent is not None and parent in self.pulls and len(chain) <= len(self.pulls):
            chain.append(parent)
            parent = self.pulls[parent].parent
        return tuple(reversed(chain))

    def _lookahead(self, pkg: BinaryPackage, chain: tuple[str, ...]) -> _Failure | None:
        """apt skips a candidate whose critical dependencies have no candidate at all."""
        for group in self._critical_groups(pkg):
            if self._cut_reason(group) is not None or self._satisfied_by_selected(group):
                continue
            if not self._solutions(group):
                return self._unsatisfiable((*chain, pkg.name), group)
        return None

    def _unsatisfiable(self, chain: tuple[str, ...], group: OrGroup) -> _Failure:
        details = []
        for alt in group.alternatives:
            real = self.universe.get(alt.name)
            if real is not None:
                details.append(
                    f"{alt.name}: candidate {real.version} ({real.architecture}, "
                    f"{real.suite}, Multi-Arch: {real.multi_arch}) does not satisfy {alt}"
                )
            else:
                providers = ", ".join(p.name for p in self.universe.providers(alt.name))
                if providers:
                    details.append(f"{alt.name}: provided by {providers}, none satisfies {alt}")
        return _Failure(chain, str(group), f"no candidate in {self.suites}", tuple(details))

    def _install(
        self,
        pkg: BinaryPackage,
        parent: str,
        relation: str,
        chain: tuple[str, ...],
        *,
        protect: bool,
    ) -> _Step:
        """apt's ``MarkInstall`` of one dependency solution, then its dependencies."""
        if pkg.name in self.kept_back:
            reason = f"{pkg.name} was kept back: {self.kept_back[pkg.name]}"
            return _Failure((*chain, pkg.name), "", reason, conflict=True)
        failure = self._lookahead(pkg, chain)
        if failure is not None:
            return failure
        for other, description in self._conflicts(pkg):
            if other.name in self.protected:
                return _Failure((*chain, pkg.name), "", description, conflict=True)
            # apt keeps an auto-selected conflicting package back and installs this one;
            # what the kept-back package satisfied is repaired at the end.
            if other.name in self.selected:  # found once per direction of the conflict
                self._do("unmark", other, self.pulls[other.name])
                self._do("keep-back", other, note=description)
        self._do("mark", pkg, Pull(pkg.name, parent, relation))
        if protect:
            self._do("protect", pkg)
        return (yield self._install_dependencies(pkg, (*chain, pkg.name)))

    def _install_dependencies(self, pkg: BinaryPackage, chain: tuple[str, ...]) -> _Step:
        protected = pkg.name in self.protected
        for group in self._critical_groups(pkg):
            if self._satisfied_by_selected(group):
                if protected:
                    # apt propagates protection to the only solution of a critical
                    # dependency, and walks that package's dependencies right away.
                    solutions = self._solutions(group)
                    only = solutions[0] if len(solutions) == 1 else None
                    if (
                        only is not None
                        and only.name in self.selected
                        and only.name not in self.protected
                    ):
                        self._do("protect", only)
                        failure = yield self._install_dependencies(
                            self.selected[only.name], (*chain, only.name)
                        )
                        if failure is not None:
                            return failure
                continue
            reason = self._cut_reason(group)
            if reason is not None:
                self.cut_edges.append(CutEdge(pkg.name, str(group), reason))
                continue
            solutions = self._solutions(group)
            usable = [s for s in solutions if s.name not in self.cut]
            if not usable:
                return self._unsatisfiable(chain, group)
            first_failure: _Failure | None = None
            for candidate in usable:
                snapshot = self._snapshot()
                failure = yield self._install(
                    candidate,
                    pkg.name,
                    str(group),
                    chain,
                    protect=protected and len(solutions) == 1,
                )
                if failure is None:
                    break
                self._rollback(snapshot)
                first_failure = first_failure or failure
            else:
                return first_failure
        return None


def _run(step: _Step) -> _Failure | None:
    """Drive nested steps with an explicit stack: deep closures need no deep recursion."""
    stack = [step]
    value: _Failure | None = None
    while stack:
        try:
            sub = stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            continue
        stack.append(sub)
        value = None
    return value
