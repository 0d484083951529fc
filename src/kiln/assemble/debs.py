"""Adapter: a verified ``DebPackage`` (kiln.debian.deb) -> an assembly ``PackageInput``."""

from __future__ import annotations

from kiln.assemble.model import DataMember, PackageInput
from kiln.debian.deb import DebPackage


def package_input(deb: DebPackage) -> PackageInput:
    """Map a .deb read with ``read_deb`` (contents kept) onto assembly's input type."""
    control = deb.control
    members = tuple(
        DataMember(
            path=m.path,
            kind=str(m.type),
            mode=m.mode,
            uid=m.uid,
            gid=m.gid,
            size=m.size,
            content=deb.contents.get(m.path) if m.is_file else None,
            link_target=m.link_target,
        )
        for m in deb.members
    )
    return PackageInput(
        name=control.package,
        version=control.version,
        architecture=control.architecture,
        control=control.text,
        members=members,
        md5sums=control.files.get("md5sums", b""),
        conffiles=tuple(c.path for c in control.conffiles),
        replaces=control.fields.get("Replaces", ""),
        multi_arch=control.fields.get("Multi-Arch", "no"),
        control_files=tuple(
            (name, data)
            for name, data in sorted(control.files.items())
            if name not in ("control", "md5sums", "conffiles")
        ),
    )
