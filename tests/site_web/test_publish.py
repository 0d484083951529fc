"""kiln site publish run again over a published store: an unchanged image keeps its
publication date and leaves no earlier release behind; its evidence is rewritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from site_web.conftest import Published

pytestmark = pytest.mark.network


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
