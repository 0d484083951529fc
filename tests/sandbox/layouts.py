"""Hand-made OCI layouts with arbitrary (also hostile) layer tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

from kiln.assemble.oci import write_layout_index
from kiln.oci.layout import write_blob
from kiln.oci.model import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
)

Member = tuple[tarfile.TarInfo, bytes | None]


def info(
    name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, **kw: object
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti


def file(name: str, data: bytes, mode: int = 0o644) -> Member:
    ti = info(name, mode=mode)
    ti.size = len(data)
    return ti, data


def layer_bytes(members: Sequence[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def write_layout(
    layout: Path,
    layers: Sequence[Sequence[Member]],
    *,
    arch: str = "amd64",
    user: str = "65532:65532",
    env: Sequence[str] = ("PATH=/usr/bin",),
) -> Path:
    blobs = [layer_bytes(m) for m in layers]
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in blobs]
    for b in blobs:
        write_blob(layout, b)
    config = canonical_json(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"User": user, "Env": list(env), "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    write_blob(layout, config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor.of(config, OCI_CONFIG).to_json(),
            "layers": [
                Descriptor.of(b, "application/vnd.oci.image.layer.v1.tar+gzip").to_json()
                for b in blobs
            ],
        }
    )
    write_blob(layout, manifest)
    platform = Platform(architecture=arch, os="linux")
    man_desc = Descriptor.of(manifest, OCI_MANIFEST, platform=platform)
    index = canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [man_desc.to_json()]}
    )
    write_blob(layout, index)
    write_layout_index(layout, Descriptor.of(index, OCI_INDEX), "latest", {arch: man_desc})
    return layout
