"""A real catalog image, published signed and checked by two verifiers.

`kiln publish images/<name>.yaml`, for every image of the catalog, builds both variants
from the real Debian archive (a staged copy of the spec, relocked when the archive moved
on), runs the image's tests, and pushes the image with its image signatures, provenance,
SBOMs and test reports to Debian's docker-registry (no referrers API: the tag fallback
runs). Every image is published for this machine's architecture; static, the smallest,
for amd64 and arm64 too, its arm64 tests run through qemu-user (both archs of all eight
take most of an hour here: `bench/publish.py` and `make demo` build them). Every tag
the convention names must be there (versions such as node's ``20.19.2+dfsg`` spelt as
valid tags). Then the image is checked twice:

- `kiln verify` with every attestation kiln publishes required;
- Sigstore's JavaScript verifier (`@sigstore/verify`, tests/attest/node) on every bundle
  attached to the index, pulled back from the registry: a peer accepts what kiln signed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from attest.test_peer_verify import node_verifier
from catalog.test_catalog import CATALOG
from fixtures.catalog import staged_spec
from fixtures.registry import RunningRegistry, registry
from kiln.attest import CYCLONEDX_1_6, PROVENANCE_V1, SPDX_2_3, TEST_REPORT_CTRF
from kiln.attest.verify import fetch_bundles
from kiln.cli.main import main
from kiln.registry import RegistryClient
from kiln.sandbox.unpack import host_arch

__all__ = ["node_verifier", "registry"]


def _layout_tag(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])


@pytest.mark.network
@pytest.mark.parametrize(
    ("name", "archs"),
    [(name, "all" if name == "static" else host_arch()) for name in CATALOG],
)
def test_catalog_image_published_and_verified_by_kiln_and_sigstore_js(
    name: str,
    archs: str,
    *,
    registry: RunningRegistry,
    node_verifier: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "catalog")
    assert main(["keygen", "--out", str(tmp_path / "kiln")]) == 0
    key, pub = tmp_path / "kiln.key", tmp_path / "kiln.pub"
    destination = f"{registry.host}/catalog"
    spec = staged_spec(name, tmp_path / "specs")
    publish = ["publish", str(spec), "--refresh", "--registry", destination, "--key", str(key)]
    if archs != "all":
        publish += ["--arch", archs]
    assert main([*publish, "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err

    required = []
    for kind in ("provenance", "spdx", "cyclonedx", "test-report"):
        required += ["--require", kind]
    assert main(["verify", f"{destination}/{name}:latest", "--key", str(pub), *required]) == 0
    assert main(["verify", f"{destination}/{name}:latest-dev", "--key", str(pub)]) == 0

    client = RegistryClient.for_host(registry.host)
    tags = set(client.list_tags(f"catalog/{name}"))
    layout_tag = _layout_tag(tmp_path / "out" / name)
    assert {"latest", "latest-dev", layout_tag, f"{layout_tag}-dev"} <= tags, tags
    if re.match(r"\d+\.\d+", layout_tag):  # and the major.minor series tag
        series = ".".join(layout_tag.split(".")[:2]).split("-")[0].split("_")[0]
        assert {series, f"{series}-dev"} <= tags, tags
    digest = client.get_manifest(f"catalog/{name}", "latest").digest
    bundles = fetch_bundles(client, f"catalog/{name}", digest)
    assert bundles, "no bundle is attached to the published index"
    seen = set()
    for n, bundle in enumerate(bundles):
        assert bundle.data is not None, bundle.problem
        path = tmp_path / f"bundle-{n}.sigstore.json"
        path.write_bytes(bundle.data)
        done = subprocess.run(
            ["node", str(node_verifier), str(path), str(pub)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        result = json.loads(done.stdout)
        assert (done.returncode, result["ok"]) == (0, True), (bundle.source, result)
        statement = result["statement"]
        assert {s["digest"]["sha256"] for s in statement["subject"]} >= {digest.encoded}, statement
        seen.add(statement["predicateType"])
    # every predicate kiln publishes reached the peer, signed over this index
    assert seen >= {PROVENANCE_V1, SPDX_2_3, CYCLONEDX_1_6, TEST_REPORT_CTRF}, seen
