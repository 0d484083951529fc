"""Build small, real OCI image layouts for registry tests (two platforms, tar layers)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kiln.registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    canonical_json,
)

REF_NAME = "org.opencontainers.image.ref.name"


def tar_layer(files: dict[str, bytes]) -> bytes:
    """A deterministic tar archive of ``files`` (sorted, zero mtimes, root-owned)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


@dataclass(frozen=True)
class GeneratedLayout:
    path: Path
    index: Descriptor  # the image index index.json points to
    manifests: tuple[Descriptor, ...]
    blobs: tuple[Descriptor, ...]  # configs and layers


def _put(root: Path, data: bytes) -> Digest:
    digest = Digest.of(data)
    target = root / "blobs" / "sha256" / digest.encoded
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return digest


def write_layout(
    root: Path, *, seed: str = "base", tag: str = "1.0", big_layer: int = 0
) -> GeneratedLayout:
    """A two-platform image (amd64, arm64) as an OCI layout at ``root``.

    ``seed`` changes every layer's content; ``big_layer`` adds a random layer of that
    many bytes to each platform (to exercise chunked uploads).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    shared = tar_layer({"etc/os-release": b"ID=debian\n", "etc/kiln-seed": seed.encode()})
    manifests: list[Descriptor] = []
    blobs: list[Descriptor] = []
    for arch in ("amd64", "arm64"):
        layers = [shared, tar_layer({f"usr/lib/{arch}/hello": f"{seed} {arch}\n".encode()})]
        if big_layer:
            rng = random.Random(f"{seed}-{arch}")
            layers.append(tar_layer({"payload.bin": rng.randbytes(big_layer)}))
        layer_descriptors = [
            Descriptor(media_type=OCI_LAYER_TAR, digest=_put(root, data), size=len(data))
            for data in layers
        ]
        config = canonical_json(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"User": "65532"},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers],
                },
            }
        )
        config_descriptor = Descriptor(
            media_type=OCI_CONFIG, digest=_put(root, config), size=len(config)
        )
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor.to_json(),
                "layers": [d.to_json() for d in layer_descriptors],
            }
        )
        manifests.append(
            Descriptor.model_validate(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": str(_put(root, manifest)),
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                }
            )
        )
        blobs.extend([config_descriptor, *layer_descriptors])
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
    )
    index_descriptor = Descriptor(media_type=OCI_INDEX, digest=_put(root, index), size=len(index))
    entry = index_descriptor.to_json() | {"annotations": {REF_NAME: tag}}
    (root / "index.json").write_bytes(
        canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    )
    unique = {d.digest: d for d in blobs}
    return GeneratedLayout(root, index_descriptor, tuple(manifests), tuple(unique.values()))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, to compare layouts byte for byte."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def read_json(path: Path) -> object:
    return json.loads(path.read_bytes())
