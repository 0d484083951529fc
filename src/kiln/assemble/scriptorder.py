"""The order a -dev image's packages are configured in: Debian's, not all at once.

Debian Policy 7.2 promises a package's ``preinst`` that its ``Pre-Depends`` are
configured, and Policy 3.8 that the Essential set works. On a real system both hold
because packages arrive in order: a bootstrap (debootstrap, mmdebstrap) installs and
configures the Essential set first, and apt unpacks and configures the rest in
dependency order. Running every ``preinst`` before any ``postinst`` breaks that: with
PAM's ``/etc/pam.d/common-*`` not yet written (libpam-runtime's postinst) Debian 12's
``adduser --gecos`` fails in ``chfn``, and mariadb-server's preinst, which calls it
with its output sent to /dev/null, exits 1 without a word.

``configure_stages`` therefore splits the packages into stages. The Essential packages
with everything they depend on come first, then the others; inside each part a package
is in a later stage than every package it (pre-)depends on, and packages that depend
on each other in a cycle share a stage (dpkg configures a cycle in one run). The
replay runs a stage's ``preinst`` scripts and then ``dpkg --configure`` for that stage
before the next one starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from debian.deb822 import Deb822, PkgRelation

from kiln.assemble.model import PackageInput

#: The relations whose targets must be configured first (Policy 7.2).
_ORDERING_FIELDS = ("Pre-Depends", "Depends")


def _relations(control: Deb822, field: str) -> list[list[str]]:
    """The package names of a relation field, one list per alternative group."""
    text = control.get(field, "")
    if not text.strip():
        return []
    return [[str(rel["name"]) for rel in group] for group in PkgRelation.parse_relations(text)]


def _dependencies(packages: Sequence[PackageInput]) -> dict[str, set[str]]:
    """dpkg name -> the dpkg names of the image's packages it (pre-)depends on.

    Every alternative the image holds (as a package or through ``Provides``) comes
    first: dpkg may need any of them (the first one's version can be wrong), and a
    cycle this makes only puts packages in one stage. A relation nothing in the image
    satisfies orders nothing (dpkg reports it).
    """
    controls = {p.dpkg_name: Deb822(p.control) for p in packages}
    holders: dict[str, set[str]] = {}
    for pkg in packages:
        holders.setdefault(pkg.name, set()).add(pkg.dpkg_name)
        for group in _relations(controls[pkg.dpkg_name], "Provides"):
            for provided in group:
                holders.setdefault(provided, set()).add(pkg.dpkg_name)
    edges: dict[str, set[str]] = {}
    for name, control in controls.items():
        wanted: set[str] = set()
        for field in _ORDERING_FIELDS:
            for group in _relations(control, field):
                for alternative in group:
                    wanted |= holders.get(alternative, set())
        wanted.discard(name)
        edges[name] = wanted
    return edges


def _components(nodes: Sequence[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's, iterative), dependencies before dependants."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def _levels(nodes: Sequence[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """``nodes`` in stages: each after every stage holding one of its dependencies."""
    inside = set(nodes)
    local = {n: edges[n] & inside for n in nodes}
    level: dict[str, int] = {}
    for component in _components(sorted(nodes), local):
        members = set(component)
        below = [level[d] for n in component for d in local[n] if d not in members]
        for n in component:
            level[n] = 1 + max(below, default=-1)
    stages: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for n in sorted(nodes):
        stages[level[n]].append(n)
    return stages


def configure_stages(packages: Sequence[PackageInput]) -> list[list[str]]:
    """The packages' dpkg names in the stages they are configured in (module docstring)."""
    edges = _dependencies(packages)
    essential = {p.dpkg_name for p in packages if Deb822(p.control).get("Essential") == "yes"}
    todo = list(essential)
    while todo:  # the Essential set with everything it depends on
        for dependency in edges[todo.pop()] - essential:
            essential.add(dependency)
            todo.append(dependency)
    rest = [n for n in edges if n not in essential]
    return [*_levels(sorted(essential), edges), *_levels(rest, edges)]
