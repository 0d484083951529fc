"""OCI image layout directories: read one to push it, write one atomically when pulling.

A layout is ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``), ``index.json`` and
``blobs/<alg>/<hex>``. See https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kiln.errors import InputError, IntegrityError, Location
from kiln.jsonlimits import read_json_file
from kiln.oci.digest import Digest
from kiln.oci.model import (
    INDEX_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    ImageIndex,
    Manifest,
    canonical_json,
    parse_manifest,
)

LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"


def blob_path(root: Path, digest: Digest) -> Path:
    return root / "blobs" / digest.algorithm / digest.encoded


@dataclass(frozen=True)
class ImageLayout:
    """An OCI image layout on disk, its ``index.json`` parsed."""

    path: Path
    index: ImageIndex

    @classmethod
    def open(cls, path: Path) -> ImageLayout:
        marker = path / "oci-layout"
        if not marker.is_file():
            raise InputError(f"{path} is not an OCI image layout: it has no oci-layout file")
        document = read_json_file(marker, max_bytes=4096, what="the oci-layout file")
        if not isinstance(document, dict):
            raise InputError("not a JSON object", location=Location(str(marker)))
        version = document.get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise InputError(
                f"imageLayoutVersion is {version!r}; kiln reads {LAYOUT_VERSION}",
                location=Location(str(marker), field="imageLayoutVersion"),
            )
        index_file = path / "index.json"
        if not index_file.is_file():
            raise InputError(f"{path} has no index.json")
        document = read_json_file(index_file, max_bytes=MAX_MANIFEST_BYTES, what="index.json")
        try:
            index = ImageIndex.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(
                first["msg"],
                location=Location(str(index_file), field=".".join(map(str, first["loc"]))),
            ) from exc
        return cls(path, index)

    def blob(self, digest: Digest) -> Path:
        found = blob_path(self.path, digest)
        if not found.is_file():
            raise InputError(f"{self.path}: blob {digest} is missing from blobs/")
        return found

    def manifest(self, descriptor: Descriptor) -> Manifest:
        """Read and verify the manifest or index a descriptor points to."""
        if descriptor.size > MAX_MANIFEST_BYTES:
            raise InputError(
                f"{self.path}: manifest {descriptor.digest} is {descriptor.size} bytes, "
                f"over the {MAX_MANIFEST_BYTES} byte limit"
            )
        data = self.blob(descriptor.digest).read_bytes()
        actual = Digest.of(data, descriptor.digest.algorithm)
        if actual != descriptor.digest or len(data) != descriptor.size:
            raise IntegrityError(
                f"{self.path}: blob {descriptor.digest} does not match its descriptor: "
                f"expected {descriptor.digest} ({descriptor.size} bytes), got {actual} "
                f"({len(data)} bytes)"
            )
        return parse_manifest(
            data,
            descriptor.media_type,
            actual,
            where=f"{self.path}: manifest {actual}",
            error=InputError,
        )

    def select(self, ref_name: str | None = None) -> Descriptor:
        """The image to push: the one named ``ref_name``, else the only image in index.json.

        A layout whose index.json lists one image index plus some of that index's own
        platform manifests (kiln's builds name them ``<tag>-<arch>`` for tools that
        cannot pick a platform) holds one image: the index.
        """
        entries = self.index.manifests
        if ref_name is not None:
            named = [d for d in entries if (d.annotations or {}).get(REF_NAME) == ref_name]
            if len(named) != 1:
                raise InputError(
                    f"{self.path}/index.json has {len(named)} manifests named {ref_name!r}"
                )
            return named[0]
        if len(entries) > 1:
            indexes = [d for d in entries if d.media_type in INDEX_TYPES]
            if len(indexes) == 1:
                parsed = self.manifest(indexes[0]).parsed
                children = (
                    {c.digest for c in parsed.manifests}
                    if isinstance(parsed, ImageIndex)
                    else set()
                )
                if all(d is indexes[0] or d.digest in children for d in entries):
                    return indexes[0]
        if len(entries) != 1:
            names = sorted((d.annotations or {}).get(REF_NAME, str(d.digest)) for d in entries)
            raise InputError(
                f"{self.path}/index.json lists {len(entries)} manifests; say which to push",
                hint=f"pass ref_name= one of: {', '.join(names) or '(none)'}",
            )
        return entries[0]


@contextlib.contextmanager
def writing_layout(destination: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``destination`` whole."""
    destination = destination.absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        (temporary / "oci-layout").write_bytes(
            canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        )
        yield temporary
        if destination.exists():
            retired = Path(
                tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent)
            )
            os.replace(destination, retired / "layout")
            os.replace(temporary, destination)
            shutil.rmtree(retired)
        else:
            os.replace(temporary, destination)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_index(root: Path, top: Descriptor, ref_name: str | None) -> None:
    """Write ``index.json`` pointing at one image, annotated with its ref name if any."""
    entry = top.to_json()
    entry.pop("annotations", None)
    if ref_name:
        entry["annotations"] = {REF_NAME: ref_name}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    (root / "index.json").write_bytes(canonical_json(index))
