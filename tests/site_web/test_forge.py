"""Open pull requests of the local git forge (real git) on the image page, with their
evidence, hostile text in it shown as text."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kiln.forge import LocalGitForge
from kiln.forge.evidence import CveRow, Evidence
from kiln.forge.model import ChangeRequest
from kiln.site.web import SiteConfig
from site_web.conftest import HOSTILE, Published, serve
from site_web.test_frontdoor import request

pytestmark = pytest.mark.network


def _catalog(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    path.mkdir()
    (path / "images").mkdir()
    (path / "images" / "static.yaml").write_text("name: static\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env, capture_output=True)
    return path


def _change(image: str, title: str) -> ChangeRequest:
    evidence = Evidence(
        image=image,
        kind="bump",
        generation="g1",
        cves_before=(CveRow("CVE-2099-0001", "tzdata", "1", "medium", "2", title=HOSTILE),),
    )
    files: dict[str, bytes | None] = {f"images/{image}.yaml": b"name: x\n"}
    return ChangeRequest(
        image=image, kind="bump", generation="g1", title=title, evidence=evidence, files=files
    )


def test_open_pull_requests_with_their_evidence(published: Published, tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "catalog")
    forge = LocalGitForge(catalog)
    opened = forge.open_or_update(_change("static", "Bump static: tzdata 2"))
    forge.open_or_update(_change("python", "Bump python"))  # another image: not listed
    with serve(SiteConfig(published.store, published.db, forge=catalog)) as running:
        status, _, body = request(running.host, "GET", "/api/v1/images/static")
        assert status == 200
        prs = json.loads(body)["pull_requests"]
        assert [(p["id"], p["title"], p["branch"]) for p in prs] == [
            (opened.id, "Bump static: tzdata 2", "kiln/bump/static")
        ]
        assert prs[0]["cves_fixed"] == ["CVE-2099-0001"]
        assert prs[0]["evidence"] == forge.body(opened.id)
        status, _, body = request(running.host, "GET", "/images/static")
        html = body.decode()
        assert "Bump static: tzdata 2" in html
        assert "Bump python" not in html
        assert "CVE-2099-0001" in html
        assert "<script>" not in html
        assert "\x1b" not in html
    # without --forge the page says where pull requests would come from
    with serve(SiteConfig(published.store, published.db)) as running:
        _, _, body = request(running.host, "GET", "/images/static")
        assert "no forge configured" in body.decode()
