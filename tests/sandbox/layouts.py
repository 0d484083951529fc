"""Hand-made OCI layouts with arbitrary (also hostile) layer tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

from kiln.assemble.oci import (
    MT_CONFIG,
    MT_INDEX,
    MT_MANIFEST,
    Descriptor,
    write_blob,
    write_layout_index,
)
from kiln.oci.model import canonical_json

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
            "mediaType": MT_MANIFEST,
            "config": Descriptor.of(MT_CONFIG, config).to_json(),
            "layers": [
                Descriptor.of("application/vnd.oci.image.layer.v1.tar+gzip", b).to_json()
                for b in blobs
            ],
        }
    )
    write_blob(layout, manifest)
    platform = (("architecture", arch), ("os", "linux"))
    man_desc = Descriptor.of(MT_MANIFEST, manifest, platform=platform)
    index = canonical_json(
        {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [man_desc.to_json()]}
    )
    write_blob(layout, index)
    write_layout_index(layout, Descriptor.of(MT_INDEX, index), "latest", {arch: man_desc})
    return layout
