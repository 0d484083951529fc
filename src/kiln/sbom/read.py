"""Build an ``SbomInput`` from an OCI image layout: what was installed, not what was asked.

Sources, all read from the image's own layers (``kiln.sbom._image``):

* identity: the index and platform manifest digests, ``org.opencontainers.image.*``
  annotations (title, version, created, vendor), the config's platform;
* the distro: ``/etc/os-release`` (fallback ``/usr/lib/os-release``) ``ID`` and
  ``VERSION_ID``; an image without one is refused, since every purl names the distro;
* packages: dpkg's database, ``/var/lib/dpkg/status.d/<pkg>`` (runtime images) or
  ``/var/lib/dpkg/status`` (``-dev`` images), parsed by ``kiln.inventory.dpkg`` so SBOM
  and scanner agree on every purl. A malformed stanza is an error: an SBOM must not
  silently leave a package out;
* licences: ``/usr/share/doc/<pkg>/copyright`` (``kiln.sbom.licenses``); for Python and
  npm packages installed outside dpkg, their own ``METADATA`` / ``package.json``
  (licence expression or name, author; else the repository owner or the Debian package
  shipping the file as supplier);
* supplier: the ``Maintainer`` field; dependencies: ``Pre-Depends``/``Depends`` resolved
  against the installed set (``Provides`` honoured);
* the .deb's sha256 and file name: only from the lock (``Lock``), matched by name,
  version and architecture. Without a lock the package checksum is omitted: the image
  holds no .deb, and dpkg's md5sums describe files, not the package;
* files kiln generated (``/etc/passwd``, ``/etc/group``, ``/etc/nsswitch.conf``, the CA
  bundle, ``/usr/lib/kiln/image.json``) with their sha256, only in images kiln built
  (those carrying ``/usr/lib/kiln/image.json``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from debian.deb822 import Deb822, PkgRelation

from kiln.errors import InputError
from kiln.inventory.dpkg import parse_status
from kiln.inventory.model import Declared, InstalledPackage, OsRelease
from kiln.inventory.npm import declared_by_package_json, parse_package_json
from kiln.inventory.osrelease import parse_os_release
from kiln.inventory.python import declared_by_core_metadata, parse_core_metadata
from kiln.inventory.tree import DEBIAN_VERSION
from kiln.jsonlimits import parse_json
from kiln.sbom._image import (
    DPKG_INFO,
    GENERATED_PATHS,
    IMAGE_JSON,
    OS_RELEASE_PATHS,
    STATUS,
    STATUS_D,
    ImageFiles,
    RootFS,
    read_image_files,
)
from kiln.sbom.licenses import license_from_copyright, license_from_declared
from kiln.sbom.model import GeneratedFile, ImageIdentity, SbomInput, SbomPackage, Supplier

if TYPE_CHECKING:  # kiln.resolve pulls in the Debian client; the lock is only passed in
    from kiln.resolve.lockfile import Lock, LockedPackage

ANNOTATION = "org.opencontainers.image."
#: control fields kiln's source builds add to their binary packages (kiln.recipes.build)
KILN_BUILD_FIELDS = ("Kiln-Recipe", "Kiln-Patches", "Kiln-Fixes")
DEFAULT_SUPPLIER = "kiln"
_EXTRA_FIELDS = ["Package", "Architecture", "Maintainer", "Homepage"]
_EXTRA_FIELDS += ["Depends", "Pre-Depends", "Provides", *KILN_BUILD_FIELDS]
# Maintainer names that are teams, lists or projects rather than a person.
_ORGANIZATION_WORDS = ("team", "maintainers", "project", "developers", "group", "debian")
_ORGANIZATION_HOSTS = ("lists.", "tracker.debian.org", "alioth")


def read_sbom_input(
    layout: Path,
    *,
    platform: str | None = None,
    lock: Lock | None = None,
    source_date_epoch: int | None = None,
    default_supplier: str = DEFAULT_SUPPLIER,
) -> SbomInput:
    """Everything an SBOM of ``layout``'s ``platform`` (``os/arch[/variant]``) states.

    ``platform`` defaults to the only image, else ``linux/amd64``. ``lock`` adds each
    .deb's sha256 and must describe the image. ``source_date_epoch`` is the creation
    time when the image has neither a ``created`` annotation nor a config ``created``.
    ``default_supplier`` names the image's supplier when it has no vendor annotation
    (NTIA's minimum elements require one for every component).
    """
    files = read_image_files(layout, platform)
    warnings: list[str] = []
    distro = _distro(files)
    image = _identity(files, source_date_epoch, default_supplier)
    packages = _packages(files.rootfs, distro, warnings)
    if lock is not None:
        _check_lock(image, lock)
        packages = [_with_lock(p, lock) for p in packages]
    shipped = _shipped_by(files.rootfs, {p.name: p.supplier for p in packages if p.supplier})
    packages += _language_packages(files.rootfs, image.name, shipped, warnings)
    generated = _generated(files.rootfs)
    return SbomInput(
        image=image,
        distro=distro,
        packages=tuple(sorted(packages, key=lambda p: (p.name, p.arch or "", p.version))),
        files=generated,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------- identity


def _rfc3339(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{where}: {text!r} is not an RFC 3339 time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _created(files: ImageFiles, source_date_epoch: int | None) -> datetime:
    annotated = files.annotations.get(ANNOTATION + "created")
    if annotated:
        return _rfc3339(annotated, f"{files.layout}: annotation {ANNOTATION}created")
    configured = files.config.get("created")
    if isinstance(configured, str) and configured:
        return _rfc3339(configured, f"{files.layout}: config created")
    if source_date_epoch is not None:
        return datetime.fromtimestamp(source_date_epoch, tz=UTC)
    raise InputError(
        f"{files.layout}: the image records no creation time (no created annotation or config)",
        hint="set SOURCE_DATE_EPOCH so the SBOM's timestamp is reproducible",
    )


_MAX_FACTS_BYTES = 16 * 1024 * 1024  # kiln writes a few kilobytes


def _kiln_facts(rootfs: RootFS) -> dict[str, object]:
    data = rootfs.read(IMAGE_JSON)
    if data is None:
        return {}
    facts = parse_json(data, where=f"/{IMAGE_JSON} in the image", max_bytes=_MAX_FACTS_BYTES)
    if not isinstance(facts, dict):
        raise InputError(f"/{IMAGE_JSON} in the image is not a JSON object")
    return facts


def _repository_of(ref_name: str | None) -> str | None:
    """The image name in a ref name: ``registry/repo:tag`` names one, a bare tag does not."""
    if not ref_name or "/" not in ref_name:
        return None  # "latest", "1.2": a tag inside the layout, not the image's name
    name = ref_name.partition("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.partition(':')[0]}"  # a tag's colon comes after the last slash


def _identity(
    files: ImageFiles, source_date_epoch: int | None, default_supplier: str
) -> ImageIdentity:
    facts = _kiln_facts(files.rootfs)
    name = (
        files.annotations.get(ANNOTATION + "title")
        or (str(facts.get("name")) if facts.get("name") else None)
        or _repository_of(files.ref_name)
        or files.layout.resolve().name
    )
    lock_digest = facts.get("lock_digest")
    return ImageIdentity(
        name=name,
        version=files.annotations.get(ANNOTATION + "version") or None,
        index_digest=files.index_digest,
        manifest_digest=files.manifest_digest,
        platform=files.platform,
        created=_created(files, source_date_epoch),
        supplier=files.annotations.get(ANNOTATION + "vendor") or default_supplier,
        lock_digest=str(lock_digest) if lock_digest else None,
    )


def _distro(files: ImageFiles) -> OsRelease:
    for path in OS_RELEASE_PATHS:
        data = files.rootfs.read(path)
        if data is None:
            continue
        where = f"/{path}"
        values = parse_os_release(data.decode("utf-8", "replace"), where, [])
        if not values.get("ID"):
            raise InputError(f"{files.layout}: {where} in the image has no ID field")
        return OsRelease.from_parts(
            values["ID"],
            values.get("VERSION_ID"),
            values.get("VERSION_CODENAME"),
            values.get("PRETTY_NAME"),
        )
    raise InputError(
        f"{files.layout}: the image has no /etc/os-release or /usr/lib/os-release",
        hint="package URLs name the distro (distro=debian-13); keep base-files' os-release",
    )


# ---------------------------------------------------------------------------- packages


@dataclass(frozen=True)
class _Extra:
    maintainer: str
    homepage: str
    relations: tuple[tuple[str, ...], ...]  # OR-groups of package names
    provides: tuple[str, ...]
    kiln_build: tuple[tuple[str, str], ...] = ()


def _relations(text: str) -> tuple[tuple[str, ...], ...]:
    if not text.strip():
        return ()
    groups = []
    for group in PkgRelation.parse_relations(text):
        names = tuple(str(alt["name"]) for alt in group if alt.get("name"))
        if names:
            groups.append(names)
    return tuple(groups)


def _extras(data: bytes) -> dict[tuple[str, str], _Extra]:
    """Maintainer, Homepage and relations per (package, arch) of one dpkg file."""
    out: dict[tuple[str, str], _Extra] = {}
    text = data.decode("utf-8", "replace")
    for stanza in Deb822.iter_paragraphs(text.splitlines(), fields=_EXTRA_FIELDS):
        name = stanza.get("Package", "").strip()
        depends = ", ".join(
            v for v in (stanza.get("Pre-Depends", ""), stanza.get("Depends", "")) if v.strip()
        )
        provides = _relations(stanza.get("Provides", ""))
        out[(name, stanza.get("Architecture", "").strip())] = _Extra(
            maintainer=" ".join(stanza.get("Maintainer", "").split()),
            homepage=stanza.get("Homepage", "").strip(),
            relations=_relations(depends),
            provides=tuple(n for group in provides for n in group),
            kiln_build=tuple(
                (f, " ".join(stanza[f].split())) for f in KILN_BUILD_FIELDS if stanza.get(f)
            ),
        )
    return out


def _dpkg_files(rootfs: RootFS) -> list[tuple[str, bytes]]:
    found = []
    status = rootfs.read(STATUS)
    if status is not None:
        found.append((STATUS, status))
    for name in rootfs.listdir(STATUS_D):
        if name.endswith((".md5sums", ".list", ".conffiles")):
            continue
        data = rootfs.read(f"{STATUS_D}/{name}")
        if data is not None:
            found.append((f"{STATUS_D}/{name}", data))
    return found


def supplier_of(maintainer: str) -> Supplier | None:
    """A Debian ``Maintainer`` (``Name <email>``) as an SPDX/CycloneDX supplier."""
    name, email = parseaddr(maintainer)
    name = name.strip() or maintainer.strip()
    if not name:
        return None
    lowered = name.lower()
    team = any(w in lowered.split() or w in lowered for w in _ORGANIZATION_WORDS)
    host = email.rpartition("@")[2].lower()
    team = team or any(h in host for h in _ORGANIZATION_HOSTS)
    return Supplier("organization" if team else "person", name, email or None)


def _packages(rootfs: RootFS, distro: OsRelease, warnings: list[str]) -> list[SbomPackage]:
    dpkg_warnings: list[str] = []
    installed: list[tuple[InstalledPackage, _Extra | None]] = []
    for path, data in _dpkg_files(rootfs):
        location = f"/{path}"
        found = parse_status(data, location, distro, dpkg_warnings, require_status=path == STATUS)
        extras = _extras(data)
        installed += [(p, extras.get((p.name, p.arch or ""))) for p in found]
    if dpkg_warnings:
        raise InputError(
            "the image's dpkg database is malformed; an SBOM would miss packages",
            details=dpkg_warnings[:10],
        )
    if not installed:
        raise InputError(
            "the image has no dpkg database (/var/lib/dpkg/status or status.d/)",
            hint="kiln's SBOMs list Debian packages from what dpkg recorded as installed",
        )
    purls = {p.name: p.purl for p, _ in installed}
    for package, extra in installed:
        for provided in extra.provides if extra else ():
            purls.setdefault(provided, package.purl)
    out = []
    for package, extra in installed:
        depends: set[str] = set()
        for group in extra.relations if extra else ():
            target = next((purls[n] for n in group if n in purls), None)
            if target is not None and target != package.purl:
                depends.add(target)
        copyright_path = f"usr/share/doc/{package.name}/copyright"
        text = rootfs.read(copyright_path)
        license_ = license_from_copyright(
            text.decode("utf-8", "replace") if text is not None else "",
            f"/{copyright_path}",
            warnings,
        )
        out.append(
            SbomPackage(
                name=package.name,
                version=package.version,
                arch=package.arch,
                source_name=package.source_name or package.name,
                source_version=package.source_version or package.version,
                purl=package.purl,
                supplier=supplier_of(extra.maintainer) if extra else None,
                license=license_.expression,
                license_refs=license_.refs,
                homepage=(extra.homepage or None) if extra else None,
                depends=tuple(sorted(depends)),
                location=package.locations[0] if package.locations else "",
                kiln_build=extra.kiln_build if extra else (),
            )
        )
    return out


def _shipped_by(rootfs: RootFS, suppliers: dict[str, Supplier]) -> dict[str, Supplier]:
    """Root-relative path -> the supplier of the Debian package whose md5sums list it."""
    out: dict[str, Supplier] = {}
    for directory in (STATUS_D, DPKG_INFO):
        for name in rootfs.listdir(directory):
            package = name.removesuffix(".md5sums").partition(":")[0]
            supplier = suppliers.get(package)
            data = rootfs.read(f"{directory}/{name}") if name.endswith(".md5sums") else None
            if supplier is None or data is None:
                continue
            for line in data.decode("utf-8", "replace").splitlines():
                path = line.partition("  ")[2].strip().lstrip("/")
                if path:
                    out[path] = supplier
    return out


def _language_supplier(declared: Declared) -> Supplier | None:
    if declared.author and "<" in declared.author:
        return supplier_of(declared.author)
    if declared.author:  # a bare name: parseaddr would take its last word for an address
        return replace(supplier_of(declared.author) or Supplier("person", ""), email=None)
    return Supplier("organization", declared.owner) if declared.owner else None


def _language_packages(
    rootfs: RootFS, image: str, shipped: dict[str, Supplier], warnings: list[str]
) -> list[SbomPackage]:
    """Python and npm packages installed outside dpkg (pip in -dev images, npm, corepack).

    Licence and supplier come from the package's own metadata (``Declared``); without an
    author the supplier is the Debian package that ships the metadata file, if one does
    (its distributor). A package declaring no licence SPDX can name is NOASSERTION,
    with a warning naming the image and the package.
    """
    found: dict[str, SbomPackage] = {}
    for path in rootfs.files():
        name = path.rpartition("/")[2]
        if name in ("package-lock.json", "os-release") or path.startswith(STATUS_D):
            continue
        if path in (STATUS, DEBIAN_VERSION, *OS_RELEASE_PATHS):
            continue
        data = rootfs.read(path)
        if data is None:
            continue
        location = f"/{path}"
        if name == "package.json":
            package = parse_package_json(data, location, warnings)
            declared = declared_by_package_json(data, location) if package else Declared()
        else:  # METADATA, PKG-INFO, *.egg-info
            package = parse_core_metadata(data, location, warnings)
            declared = declared_by_core_metadata(data) if package else Declared()
        if package is None or package.purl in found:
            continue
        license_ = license_from_declared(declared.licenses)
        if license_ is None:
            said = f"declares {declared.licenses[0]!r}" if declared.licenses else "declares none"
            warnings.append(
                f"{image}: {package.ecosystem} package {package.name} {package.version} "
                f"({location}): no SPDX licence ({said}), NOASSERTION"
            )
        found[package.purl] = SbomPackage(
            name=package.name,
            version=package.version,
            arch=None,
            source_name=package.name,
            source_version=package.version,
            purl=package.purl,
            supplier=_language_supplier(declared) or shipped.get(path),
            license=license_,
            location=location,
            ecosystem=package.ecosystem,
        )
    return list(found.values())


# ------------------------------------------------------------------------------- lock


def _check_lock(image: ImageIdentity, lock: Lock) -> None:
    if image.lock_digest and image.lock_digest != lock.digest:
        raise InputError(
            f"the lock of {lock.image} ({lock.digest}) is not the one this image was built "
            f"from ({image.lock_digest}, recorded in /{IMAGE_JSON})",
            hint="pass the lock file the image was built with",
        )


def _with_lock(package: SbomPackage, lock: Lock) -> SbomPackage:
    matches: list[LockedPackage] = [
        p
        for p in lock.all_packages()
        if (p.name, p.version) == (package.name, package.version)
        and p.arch in (package.arch, "all")
    ]
    if not matches:
        raise InputError(
            f"package {package.name} {package.version} ({package.arch}) is installed in the "
            f"image but not in the lock of {lock.image}",
            hint="pass the lock file the image was built with",
        )
    locked = matches[0]
    return replace(
        package, deb_sha256=locked.sha256, deb_filename=locked.filename.rpartition("/")[2]
    )


# ------------------------------------------------------------------------------ files


def _generated(rootfs: RootFS) -> tuple[GeneratedFile, ...]:
    if rootfs.read(IMAGE_JSON) is None:
        return ()  # not built by kiln: these files came from packages or other tools
    out = []
    for path in GENERATED_PATHS:
        data = rootfs.read(path)
        if data is None:
            continue
        out.append(
            GeneratedFile(
                path=f"/{path}",
                sha256=hashlib.sha256(data).hexdigest(),
                sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                size=len(data),
            )
        )
    return tuple(sorted(out, key=lambda f: f.path))
