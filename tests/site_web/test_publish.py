"""kiln site publish run again over a published store: an unchanged image keeps its
publication date and leaves no earlier release behind; its evidence is rewritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.site.web import SiteConfig
from site_web.conftest import Published, serve
from site_web.test_frontdoor import request

pytestmark = pytest.mark.network


def get(host: str, path: str) -> Any:
    status, _, body = request(host, "GET", path)
    assert status == 200, body
    return json.loads(body)


def test_republishing_an_unchanged_image(published: Published, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(published.store / "static-dev", store / "static-dev")
    before = json.loads((store / "static-dev" / "site.json").read_text())
    spec = staged_spec("static", tmp_path / "spec")
    code = main(["site", "publish", str(spec), "--key", str(published.private_key),
                 "--password-file", str(published.password_file), "--store", str(store),
                 "--variant", "dev", "--arch", "amd64"])  # fmt: skip
    assert code == 0
    after = json.loads((store / "static-dev" / "site.json").read_text())
    assert after["digest"] == before["digest"]  # reproducible: the same image
    assert after["published"] == before["published"]  # so no new release date
    assert list((store / "history" / "static-dev").iterdir()) == []  # nothing kept
    bundles = {p.name for p in (store / "static-dev" / "attestations").glob("*.sigstore.json")}
    # the image's own 6 (2 signatures, provenance, SPDX, CycloneDX, CTRF), signed anew,
    # and the VEX attached since (kiln attest): about the same image, so carried over
    assert len(bundles) == 7, bundles
    assert "vex.sigstore.json" in bundles
    assert (store / "kiln.pub").read_bytes() == published.public_key.read_bytes()


def test_publish_refuses_a_missing_spec(published: Published, tmp_path: Path) -> None:
    code = main(["site", "publish", str(tmp_path / "nope.yaml"), "--key",
                 str(published.private_key), "--password-file", str(published.password_file),
                 "--store", str(tmp_path / "store")])  # fmt: skip
    assert code == 2


def test_a_new_release_keeps_the_earlier_one_reachable(
    published: Published, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """static, then static with zlib added: the first is kept under history/, pullable
    and verifiable by its digest, listed on the image page, and the diff between the two
    shows zlib and the CVE that came with it."""
    store = tmp_path / "store"
    spec = staged_spec("static", tmp_path / "spec")
    common = ["--key", str(published.private_key), "--password-file",
              str(published.password_file), "--store", str(store),
              "--variant", "runtime", "--arch", "amd64"]  # fmt: skip
    assert main(["site", "publish", str(spec), *common]) == 0
    first = json.loads((store / "static" / "site.json").read_text())["digest"]
    text = spec.read_text()
    spec.write_text(text.replace("packages:\n", "packages:\n  - zlib1g\n", 1))
    assert main(["site", "publish", str(spec), *common, "--refresh"]) == 0
    second = json.loads((store / "static" / "site.json").read_text())["digest"]
    assert second != first
    kept = store / "history" / "static" / first.removeprefix("sha256:")
    assert (kept / "site.json").is_file()
    shutil.copy(published.public_key, tmp_path / "kiln.pub")
    with serve(SiteConfig(store, published.db)) as running:
        image = get(running.host, "/api/v1/images/static")
        assert [e["ref"] for e in image["earlier"]] == [first]  # "latest" moved on
        assert image["tags"] == ["latest"]
        diff = get(running.host, f"/api/v1/images/static/diff?from={first}&to=latest")
        assert "deb:zlib1g" in {p["name"] for p in diff["added"]}
        assert diff["cves_introduced"] == ["CVE-2099-0005"]
        assert diff["compressed_change"] > 0
        status, headers, _ = request(running.host, "HEAD", f"/v2/kiln/static/manifests/{first}")
        assert (status, headers["docker-content-digest"]) == (200, first)
        capsys.readouterr()
        key = ["--key", str(tmp_path / "kiln.pub")]
        assert main(["verify", f"{running.host}/kiln/static@{first}", *key]) == 0
        assert main(["verify", f"{running.host}/kiln/static:latest", *key]) == 0
        assert f"verified {second}" in capsys.readouterr().out
