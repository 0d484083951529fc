"""A cache of finished image layouts, keyed by everything that determines their bytes.

Builds are reproducible, so a build whose inputs (spec, lock, variant, architectures,
options, SOURCE_DATE_EPOCH and kiln's own code) did not change yields the same layout:
a warm build restores it instead of re-reading .debs and recompressing layers. Entries
are written atomically (a crash leaves no half entry) and restored by hard-linking the
content-addressed blobs (copying where links are impossible).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import kiln
from kiln.assemble.build import ArchImage, BuiltImage
from kiln.assemble.harden import ElfAudit, HardeningReport
from kiln.assemble.layers import LayerBlob
from kiln.oci.model import Descriptor, canonical_json
from kiln.oci.staging import commit_directory, discard_staging, new_staging_dir

_SUMMARY = "build.json"
_LAYOUT = "layout"


#: The parts of kiln whose code decides a layout's bytes (relative to the package). A
#: module imported by these (statically, lazy stubs included) is either listed here or
#: in NOT_OUTPUT with the reason it does not shape a layout: tests/assemble/
#: test_output_code.py fails otherwise, so a new output-shaping module cannot be missed
#: by the cache key (a module only reached by a dynamic import would be).
OUTPUT_CODE = (
    "assemble",
    "oci",  # canonical JSON, the layout index and blob writes
    # the spec model and how its YAML reads; not spec/family.py, the catalog's generator:
    # what it generates is a spec, whose bytes are part of every key
    "spec/__init__.py",
    "spec/__init__.pyi",
    "spec/model.py",
    "spec/load.py",
    "yamldoc.py",
    "epoch.py",  # how $SOURCE_DATE_EPOCH reads
    "debian/deb.py",
    "debian/_ar.py",
    "debian/version.py",  # Replaces/diversion checks, the upstream version of the tag
    "resolve/lockfile.py",  # which locked packages and npm tarballs a variant gets
    "upstream/__init__.py",
    "upstream/tarball.py",  # npm tarballs become image files
    "isolation",  # the user namespace and emulation -dev maintainer scripts run in
    "sbom/licenses.py",  # the licenses annotation
    "sbom/model.py",
    "pipeline/build.py",
    "pipeline/tags.py",  # the tag is part of the cached build
    "pipeline/origin.py",  # the source/revision/licenses annotations
)

#: Modules the output code imports that do not decide a layout's bytes, and why.
NOT_OUTPUT: dict[str, str] = {
    "__init__.py": "kiln.__version__ is part of the digest by itself",
    "aptrepo": "kiln's apt repository: what it serves is resolved into the lock, which is keyed",
    "debian/__init__.py": "the archive client's exports (indexes, Releases, mirrors)",
    "debian/cache.py": "where verified files are kept; the .debs are keyed by name and hash",
    "debian/client.py": "downloads, verified against the lock's hashes",
    "debian/distro.py": "release names and suites: resolution, keyed through the lock",
    "debian/index.py": "Packages indexes: resolution, keyed through the lock",
    "debian/model.py": "Packages stanzas: resolution, keyed through the lock",
    "debian/release.py": "signed Release files: verification only",
    "debian/sources.py": "the mirrors, keyed as build facts",
    "errors.py": "error classes and messages",
    "fileio.py": "atomic writes: where bytes go, not which",
    "inventory/model.py": "installed-set records; sbom.model's LicenseRef does not read them",
    "jsonlimits.py": "size and depth limits of JSON reads",
    "net": "HTTP transport",
    "pipeline/archive.py": "fetching and verifying .debs (keyed by name and hash)",
    "pipeline/lock.py": "lock policy; the lock's digest is keyed",
    "progress.py": "progress lines",
    "resolve/_relations.py": "dependency relations: resolution, keyed through the lock",
    "resolve/install_time.py": "which edges resolution cuts: keyed through the lock",
    "resolve/solver.py": "resolution, keyed through the lock",
    "sandbox/unpack.py": "host_arch only (which archive a build also writes)",
    "text.py": "one-line text for messages",
    "upstream/integrity.py": "npm integrity verification (the lock's sha512 is keyed)",
    "upstream/npm.py": "the npm registry client (tarballs are verified, then keyed by the lock)",
}


def _code_files(parts: Iterable[str]) -> set[Path]:
    root = Path(kiln.__file__).parent
    files: set[Path] = set()
    for part in parts:
        path = root / part
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return files


def digest_of_code(parts: Iterable[str]) -> str:
    """sha256 over kiln's version and the modules of ``parts`` (relative to the package:
    a module or a folder; ``"."`` is all of kiln), with their paths."""
    root = Path(kiln.__file__).parent
    digest = hashlib.sha256(kiln.__version__.encode())
    for path in sorted(_code_files(parts)):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the source that shapes layouts: changing it invalidates cached builds."""
    return digest_of_code(OUTPUT_CODE)


def build_key(facts: Mapping[str, object]) -> str:
    """The cache key of a build: its identifying facts plus kiln's code digest."""
    return hashlib.sha256(canonical_json({"code": code_digest(), **facts})).hexdigest()


def _descriptor(d: Descriptor) -> dict[str, object]:
    return d.to_json()


def _undescriptor(doc: Mapping[str, Any]) -> Descriptor:
    return Descriptor.model_validate(doc)  # a damaged entry: ValidationError, a ValueError


def _summary(built: BuiltImage) -> dict[str, object]:
    return {
        "tag": built.tag,
        "source_date_epoch": built.source_date_epoch,
        "index": _descriptor(built.index),
        "images": [
            {
                "arch": img.arch,
                "manifest": _descriptor(img.manifest),
                "config": _descriptor(img.config),
                "files": img.files,
                "layers": [
                    {k: v for k, v in asdict(layer).items() if k not in ("path", "reused")}
                    for layer in img.layers
                ],
            }
            for img in built.images
        ],
        "reports": [asdict(r) for r in built.reports],
    }


def _restore(doc: dict[str, Any], layout: Path) -> BuiltImage:
    blobs = layout / "blobs" / "sha256"
    images = []
    for img in doc["images"]:
        layers = tuple(
            LayerBlob(**{**layer, "path": blobs / layer["digest"].split(":", 1)[1]})
            for layer in img["layers"]
        )
        images.append(
            ArchImage(
                img["arch"],
                _undescriptor(img["manifest"]),
                _undescriptor(img["config"]),
                layers,
                img["files"],
            )
        )
    reports = tuple(
        HardeningReport(
            **{
                **r,
                "setid_stripped": tuple(r["setid_stripped"]),
                "world_writable_fixed": tuple(r["world_writable_fixed"]),
                "library_dirs_without_cache": tuple(r["library_dirs_without_cache"]),
                "elf": tuple(ElfAudit(**e) for e in r["elf"]),
            }
        )
        for r in doc["reports"]
    )
    return BuiltImage(
        layout,
        str(doc["tag"]),
        _undescriptor(doc["index"]),
        tuple(images),
        reports,
        int(doc["source_date_epoch"]),
    )


def _link_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name == "sha256":
            try:
                os.link(path, dest)
                continue
            except OSError:
                pass
        shutil.copyfile(path, dest)


class LayoutCache:
    """Finished layouts under ``root/<key>/``, restored atomically into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def lookup(self, key: str, out: Path) -> BuiltImage | None:
        """Restore the layout cached under ``key`` at ``out``; None when absent or damaged."""
        entry = self.root / key
        try:
            doc = json.loads((entry / _SUMMARY).read_bytes())
            staging = new_staging_dir(out)
        except (OSError, ValueError):
            return None
        try:
            _link_tree(entry / _LAYOUT, staging)
            built = _restore(doc, out)
            commit_directory(staging, out)
        except (OSError, KeyError, TypeError, ValueError):
            discard_staging(staging)
            return None
        except BaseException:
            discard_staging(staging)
            raise
        return built

    def store(self, key: str, built: BuiltImage) -> None:
        """Keep a copy of ``built`` (best effort: a full disk only loses the cache entry)."""
        entry = self.root / key
        if (entry / _SUMMARY).exists():
            return
        try:
            staging = new_staging_dir(entry)
        except OSError:
            return
        try:
            _link_tree(built.layout, staging / _LAYOUT)
            (staging / _SUMMARY).write_bytes(canonical_json(_summary(built)))
            commit_directory(staging, entry)
        except OSError:
            discard_staging(staging)
        except BaseException:
            discard_staging(staging)
            raise
