"""A registry reference is pulled (digest-verified) and read like a layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from inventory.builders import BASE_LAYER, Entry, image_manifest, layer_tar, metadata, write_layout
from kiln.errors import InputError
from kiln.inventory import load_target
from kiln.registry import Reference, RegistryClient, push_layout

pytestmark = pytest.mark.skipif(
    shutil.which("docker-registry") is None, reason="docker-registry is not installed (make apt)"
)


def test_scan_a_registry_reference(registry: RunningRegistry, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    arm = [
        *BASE_LAYER,
        Entry("usr/lib/python3/dist-packages/arm-1.dist-info/METADATA", metadata("arm", "1")),
    ]
    write_layout(
        layout,
        [
            image_manifest(layout, [layer_tar(BASE_LAYER)], arch="amd64"),
            image_manifest(layout, [layer_tar(arm)], arch="arm64"),
        ],
        nested=True,
    )
    reference = Reference.parse(f"{registry.host}/inventory/multi:1")
    with RegistryClient.for_host(registry.host) as client:
        push_layout(client, layout, reference)

    pulled = load_target(f"{registry.host}/inventory/multi:1")
    local = load_target(layout)
    assert [p.purl for p in pulled.packages] == [p.purl for p in local.packages]
    assert pulled.target == f"{registry.host}/inventory/multi:1"
    arm_names = {
        p.name
        for p in load_target(
            f"docker://{registry.host}/inventory/multi:1", platform="linux/arm64"
        ).packages
    }
    assert "arm" in arm_names


def test_bad_reference_is_an_input_error() -> None:
    with pytest.raises(
        InputError, match=r"nor a valid registry reference: .*tag '-bad-' is not valid"
    ):
        load_target("registry.example.org/kiln/python:-bad-")
