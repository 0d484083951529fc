"""An in-memory ``PackageUniverse`` for resolver tests, built from Packages stanzas.

Stands in for the repository client's index: the candidate of a name is its highest
version (dpkg order) across the given indexes, per architecture (the native one or
``all``), and ``providers`` answers from the candidates' ``Provides`` fields.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from debian.deb822 import Packages

from kiln.debian.model import BinaryPackage
from kiln.debian.version import compare_versions
from kiln.resolve._relations import parse_provides


def package_from_stanza(stanza: Packages, suite: str) -> BinaryPackage:
    source = stanza.get("Source", stanza["Package"])
    source_name, _, rest = source.partition(" ")
    source_version = rest.strip("() ") or stanza["Version"]
    return BinaryPackage(
        name=stanza["Package"],
        version=stanza["Version"],
        architecture=stanza["Architecture"],
        source=source_name,
        source_version=source_version,
        filename=stanza.get("Filename", f"pool/{stanza['Package']}.deb"),
        size=int(stanza.get("Size", "0")),
        sha256=stanza.get("SHA256", "0" * 64),
        suite=suite,
        depends=stanza.get("Depends", ""),
        pre_depends=stanza.get("Pre-Depends", ""),
        provides=stanza.get("Provides", ""),
        conflicts=stanza.get("Conflicts", ""),
        breaks=stanza.get("Breaks", ""),
        replaces=stanza.get("Replaces", ""),
        multi_arch=stanza.get("Multi-Arch", "no"),
        essential=stanza.get("Essential", "no") == "yes",
        priority=stanza.get("Priority", "optional"),
        section=stanza.get("Section", ""),
    )


class MemoryUniverse:
    """Candidates (highest version per name) of one architecture, with a Provides index."""

    def __init__(self, packages: Iterable[BinaryPackage], arch: str = "amd64") -> None:
        self.arch = arch
        best: dict[str, BinaryPackage] = {}
        for pkg in packages:
            if pkg.architecture not in (arch, "all"):
                continue
            old = best.get(pkg.name)
            if old is None or compare_versions(pkg.version, old.version) > 0:
                best[pkg.name] = pkg
        self._candidates = best
        provided: dict[str, list[BinaryPackage]] = defaultdict(list)
        for pkg in best.values():
            for provide in {p.name for p in parse_provides(pkg)}:
                provided[provide].append(pkg)
        self._providers = {k: tuple(sorted(v, key=lambda p: p.name)) for k, v in provided.items()}

    @classmethod
    def from_stanzas(cls, text: str, arch: str = "amd64", suite: str = "trixie") -> MemoryUniverse:
        """Stanzas as in a Packages file; Architecture defaults to ``arch``, Version to 1."""
        packages = []
        for stanza in Packages.iter_paragraphs(io.StringIO(text), use_apt_pkg=False):
            stanza.setdefault("Version", "1")
            stanza.setdefault("Architecture", arch)
            packages.append(package_from_stanza(stanza, suite))
        return cls(packages, arch)

    @classmethod
    def from_packages_files(
        cls, files: Sequence[tuple[Path, str]], arch: str = "amd64"
    ) -> MemoryUniverse:
        """Real ``Packages`` files, each with the suite it came from."""
        packages = []
        for path, suite in files:
            with path.open(encoding="utf-8") as fh:
                for stanza in Packages.iter_paragraphs(fh, use_apt_pkg=False):
                    packages.append(package_from_stanza(stanza, suite))
        return cls(packages, arch)

    def get(self, name: str) -> BinaryPackage | None:
        return self._candidates.get(name)

    def providers(self, name: str) -> Sequence[BinaryPackage]:
        return self._providers.get(name, ())

    def names(self) -> Iterator[str]:
        return iter(sorted(self._candidates))
