"""Check every catalog entry's program path against its package's file list, unbuilt.

Run: `.venv/bin/python tools/check_catalog_binaries.py [--release debian-13] [--family F]`.
Needs the Debian archive (the .debs are fetched verified into kiln's cache, as a build
would). For each generated spec it looks for the ``binary`` among the files and symlinks
of the spec's packages (the entry's own, then their direct dependencies), listed with
``dpkg-deb --contents``; prints each entry whose program no package ships, and exits 1
if there is one. A cheap guard for the whole catalog before a full build.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from kiln.debian.distro import get_distro  # noqa: E402
from kiln.factory.catalogbuild import hand_written, package_checker  # noqa: E402
from kiln.pipeline import ArchiveAccess  # noqa: E402
from kiln.spec.family import load_families, plan_catalog  # noqa: E402

_DEP_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]+)")


def _paths(deb: Path) -> set[str]:
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    found = set()
    for line in out.splitlines():
        name = line.split(None, 5)[-1].split(" -> ")[0].split(" link to ")[0]
        path = "/" + name.removeprefix("./").rstrip("/")
        for top in ("/bin/", "/sbin/", "/lib/", "/lib64/"):  # kiln assembles merged /usr
            if path.startswith(top):
                path = "/usr" + path
        found.add(path)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="debian-13")
    parser.add_argument("--family")
    args = parser.parse_args()
    archive = ArchiveAccess.from_environment()
    distro = get_distro(args.release)
    universe = archive.snapshot(distro, ["amd64"]).universe("amd64")
    exists = {args.release: package_checker(archive, args.release)}
    families = load_families(ROOT / "catalog", reserved=hand_written(ROOT))
    plan = plan_catalog(families, exists, only_family=args.family)
    missing = 0
    for image in plan.images:
        if image.release != args.release:
            continue
        spec = image.spec
        wanted = [p for p in spec["packages"] if p not in ("base-files", "netbase", "tzdata")]
        wanted = [p for p in wanted if p != "ca-certificates"]
        binaries = {spec["entrypoint"][0]} if spec["entrypoint"] else set()
        names = list(wanted)
        for name in wanted:  # the direct dependencies too (metapackages: clang, golang-go)
            package = universe.get(name)
            if package is not None:
                for relation in f"{package.pre_depends},{package.depends}".split(","):
                    for choice in relation.split("|"):
                        found = _DEP_NAME.match(choice.split(":")[0])
                        if found and universe.get(found.group(1)) is not None:
                            names.append(found.group(1))
        packages = [p for n in dict.fromkeys(names) if (p := universe.get(n)) is not None]
        shipped: set[str] = set()
        for deb in archive.fetch(distro, packages):
            shipped |= _paths(deb)
        absent = sorted(b for b in binaries if b not in shipped)
        if absent:
            missing += 1
            stem = absent[0].rsplit("/", 1)[-1]
            near = sorted(p for p in shipped if p.rsplit("/", 1)[-1].startswith(stem))[:6]
            print(
                f"{image.name}: {', '.join(absent)} is in none of {', '.join(wanted)} "
                f"(near: {', '.join(near) or 'nothing'})"
            )
    checked = sum(1 for i in plan.images if i.release == args.release)
    print(f"{checked} {args.release} specs checked, {missing} with a program no package ships")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
