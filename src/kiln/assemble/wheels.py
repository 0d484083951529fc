"""Install a Python wheel that the image's packages ship into the plan, as pip would.

Used to bootstrap pip in ``-dev`` images from Debian's own wheel (``python3-pip-whl``
ships ``/usr/share/python-wheels/pip-*.whl``) instead of the ``python3-pip`` package,
the way the official python images carry pip in ``/usr/local``. Nothing runs in the
image: pypa's ``installer`` library reads the wheel, checks its ``RECORD`` (hashes and
sizes) and hands every file to ``PlanDestination``, which turns it into plan entries.

Layout (the ``posix_prefix`` install scheme, ``sysconfig``): files go to
``<prefix>/lib/python<X.Y>/site-packages``, console scripts to ``<prefix>/bin`` with
the interpreter as shebang, data to ``<prefix>``, headers to
``<prefix>/include/python<X.Y>/<dist>``. Like pip installing itself, pip also gets the
``pip<X>`` and ``pip<X.Y>`` scripts. The installed ``RECORD`` lists every file, so
``pip uninstall`` / ``pip install --upgrade pip`` work later in the image.

References: https://packaging.python.org/en/latest/specifications/binary-distribution-format/,
https://packaging.python.org/en/latest/specifications/recording-installed-packages/.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import posixpath
import re
import zipfile
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import BinaryIO, Literal

from installer import install
from installer.destinations import WheelDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.scripts import InvalidScript, Script
from installer.sources import WheelFile
from installer.utils import Scheme, construct_record_file, fix_shebang, parse_entrypoints

from kiln.assemble.fs import Entry, Plan, file_entry, normalise_path
from kiln.assemble.model import WheelInstall
from kiln.assemble.plan import usrmerge_path
from kiln.errors import InputError

_PYTHON_NAME = re.compile(r"^python(\d+)\.(\d+)$")
#: The ``INSTALLER`` file (PEP 376 / recording-installed-packages) kiln leaves behind.
INSTALLER_NAME = b"kiln\n"
#: Distributions whose console scripts pip also installs versioned (pip's wheel.py).
_VERSIONED_SCRIPTS = frozenset({"pip"})
_MAX_WHEEL_FILES = 20_000


def _find_wheel(plan: Plan, pattern: str, where: str) -> str:
    """The one regular file of the plan matching ``pattern`` (an absolute glob)."""
    wanted = "/" + usrmerge_path(normalise_path(pattern, where=where))
    found = sorted(
        path
        for path, entry in plan.entries.items()
        if entry.kind in ("file", "hardlink") and fnmatchcase("/" + path, wanted)
    )
    if not found:
        raise InputError(
            f"{where}: no file in the image matches {pattern}",
            hint="add the package that ships the wheel (e.g. python3-pip-whl) to the variant",
        )
    if len(found) > 1:
        listed = ", ".join("/" + p for p in found)
        raise InputError(f"{where}: {pattern} matches more than one wheel: {listed}")
    return found[0]


def python_version(plan: Plan, interpreter: str, where: str) -> tuple[int, int]:
    """(major, minor) of the interpreter, from the name of the file it resolves to."""
    path = normalise_path(interpreter, where=where)
    real = plan.resolve(usrmerge_path(path))
    if real is None or plan.entries[real].kind not in ("file", "hardlink"):
        raise InputError(
            f"{where}: interpreter {interpreter} does not exist in the image",
            hint="declare it (e.g. a paths: symlink to /usr/bin/python3.13) or fix the path",
        )
    match = _PYTHON_NAME.match(posixpath.basename(real))
    if match is None:
        raise InputError(
            f"{where}: interpreter {interpreter} resolves to /{real}, not a pythonX.Y binary"
        )
    return int(match[1]), int(match[2])


def scheme_paths(prefix: str, version: tuple[int, int], distribution: str) -> dict[str, str]:
    """sysconfig's ``posix_prefix`` scheme for ``prefix`` (absolute image paths)."""
    short = f"{version[0]}.{version[1]}"
    site = f"{prefix}/lib/python{short}/site-packages"
    return {
        "purelib": site,
        "platlib": site,
        "headers": f"{prefix}/include/python{short}/{distribution}",
        "scripts": f"{prefix}/bin",
        "data": prefix,
    }


class PlanDestination(WheelDestination):
    """An ``installer`` destination that records plan entries instead of writing files."""

    def __init__(self, schemes: dict[str, str], interpreter: str, where: str) -> None:
        self.schemes = schemes
        self.interpreter = interpreter
        self.where = where
        self.entries: dict[str, Entry] = {}
        #: scripts written outside ``installer.install`` (pip<X.Y>), added to RECORD
        self.extra_records: list[tuple[Scheme, RecordEntry]] = []

    def _plan_path(self, scheme: Scheme, path: str) -> str:
        base = self.schemes[scheme]
        full = posixpath.normpath(posixpath.join(base, path))
        if not full.startswith(base.rstrip("/") + "/"):
            raise InputError(f"{self.where}: wheel member {path!r} leaves the {scheme} directory")
        return usrmerge_path(normalise_path(full, where=self.where))

    def _add(self, scheme: Scheme, path: str, data: bytes, mode: int) -> RecordEntry:
        if len(self.entries) >= _MAX_WHEEL_FILES:
            raise InputError(f"{self.where}: the wheel has more than {_MAX_WHEEL_FILES} files")
        plan_path = self._plan_path(scheme, path)
        if plan_path in self.entries:
            raise InputError(f"{self.where}: the wheel installs /{plan_path} twice")
        self.entries[plan_path] = file_entry(plan_path, data, mode=mode)
        digest = Hash("sha256", _sha256(data))
        return RecordEntry(path, digest, len(data))

    def write_file(
        self,
        scheme: Scheme,
        path: str | os.PathLike[str],
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        name = os.fspath(path)
        if scheme == "scripts":
            with fix_shebang(stream, self.interpreter) as fixed:
                data = fixed.read()
        else:
            data = stream.read()
        return self._add(scheme, name, data, 0o755 if is_executable else 0o644)

    def write_script(
        self, name: str, module: str, attr: str, section: Literal["console", "gui"]
    ) -> RecordEntry:
        try:
            script_name, data = Script(name, module, attr, section).generate(
                self.interpreter, "posix"
            )
        except InvalidScript as exc:
            raise InputError(f"{self.where}: entry point {name!r}: {exc}") from exc
        return self._add(Scheme("scripts"), script_name, data, 0o755)

    def finalize_installation(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        base = self.schemes[scheme]

        def prefix_for(file_scheme: Scheme) -> str | None:
            if file_scheme == scheme:
                return None
            return posixpath.relpath(self.schemes[file_scheme], start=base) + "/"

        with construct_record_file([*records, *self.extra_records], prefix_for) as record:
            data = record.read()
        plan_path = self._plan_path(scheme, record_file_path)
        self.entries[plan_path] = file_entry(plan_path, data)


def _sha256(data: bytes) -> str:
    """RECORD's hash encoding: urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def _versioned_scripts(
    source: WheelFile, destination: PlanDestination, version: tuple[int, int]
) -> None:
    """pip<X> and pip<X.Y>, which pip writes when it installs itself."""
    if source.distribution.lower() not in _VERSIONED_SCRIPTS:
        return
    if "entry_points.txt" not in source.dist_info_filenames:
        return
    scripts = {
        name: (module, attr, section)
        for name, module, attr, section in parse_entrypoints(
            source.read_dist_info("entry_points.txt")
        )
    }
    base = source.distribution.lower()
    if base not in scripts:
        return
    module, attr, section = scripts[base]
    for suffix in (f"{version[0]}", f"{version[0]}.{version[1]}"):
        if base + suffix not in scripts:
            record = destination.write_script(base + suffix, module, attr, section)
            destination.extra_records.append((Scheme("scripts"), record))


def install_wheel(plan: Plan, spec: WheelInstall, *, where: str) -> Plan:
    """Install the wheel ``spec`` names, from the plan's own files, into the plan.

    Raises ``InputError`` naming ``where`` when the wheel is missing or ambiguous, the
    interpreter does not exist, the wheel's RECORD does not match its content, or a file
    it would install is already in the image.
    """
    wheel_path = _find_wheel(plan, spec.wheel, where)
    version = python_version(plan, spec.interpreter, where)
    data = plan.read(wheel_path) or b""
    where = f"{where} (/{wheel_path})"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InputError(f"{where}: not a zip archive: {exc}") from exc
    archive.filename = posixpath.basename(wheel_path)
    prefix = posixpath.normpath(spec.prefix)
    try:
        with archive:
            source = WheelFile(archive)
            source.validate_record()
            schemes = scheme_paths(prefix, version, source.distribution)
            destination = PlanDestination(schemes, spec.interpreter, where)
            _versioned_scripts(source, destination, version)
            install(source, destination, {"INSTALLER": INSTALLER_NAME})
    except (InstallerError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"{where}: invalid wheel: {exc}") from exc
    clashes = sorted(p for p in destination.entries if p in plan)
    if clashes:
        owners = ", ".join(f"/{p} ({plan.entries[p].package})" for p in clashes[:5])
        raise InputError(f"{where}: the wheel would overwrite files already in the image: {owners}")
    return plan.with_entries(*destination.entries.values())
