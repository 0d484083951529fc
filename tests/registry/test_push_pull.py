"""Push generated OCI layouts to a real docker-registry and pull them back."""

from __future__ import annotations

from pathlib import Path

from fixtures.registry import RunningRegistry
from kiln.registry import (
    Anonymous,
    Reference,
    RegistryClient,
    pull_layout,
    push_layout,
)

from .layouts import tree, write_layout


def client_for(registry: RunningRegistry, **options: object) -> RegistryClient:
    return RegistryClient.for_host(
        registry.host,
        credentials=Anonymous(),
        sleep=lambda _: None,
        **options,  # type: ignore[arg-type]
    )


def test_push_then_pull_is_bit_identical(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="roundtrip", tag="1.0")
    target = Reference.parse(f"{registry.host}/kiln/roundtrip:1.0")
    with client_for(registry) as client:
        pushed = push_layout(client, source.path, target)
        assert pushed.digest == source.index.digest
        assert pushed.tags == ("1.0",)
        pulled = pull_layout(client, target, tmp_path / "out")
    assert pulled.descriptor.digest == source.index.digest
    assert tree(tmp_path / "out") == tree(source.path)
