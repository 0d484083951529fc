"""The registry front door against real clients: skopeo, podman (runc), kiln's own
client (``kiln verify``, ``kiln scan``), and raw HTTP for the protocol's details."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.site.web import SiteConfig
from site_web.conftest import Published, RunningSite, serve

pytestmark = pytest.mark.network

REQUIRED = ["--require", "provenance", "--require", "spdx", "--require", "cyclonedx",
            "--require", "test-report"]  # fmt: skip


def request(
    host: str, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path sent exactly as given: no client normalisation)."""
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _index_digest(layout: Path) -> str:
    digest: str = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    return digest


def test_skopeo_copy_then_kiln_verify(
    published: Published, site: RunningSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    target = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false",
         f"docker://{site.host}/kiln/static:latest", f"oci:{target}:latest"],
        check=True, capture_output=True,
    )  # fmt: skip
    # the image as published, both platforms, byte for byte (same index digest)
    digest = _index_digest(published.store / "static")
    assert _index_digest(target) == digest
    capsys.readouterr()
    reference = f"{site.host}/kiln/static@{digest}"
    assert main(["verify", reference, "--key", str(published.public_key), *REQUIRED]) == 0
    out = capsys.readouterr().out
    assert f"verified {digest}" in out
    assert "ok: SLSA provenance" in out
    assert "ok: test report" in out


@pytest.fixture
def request_cleanup() -> Iterator[list[Path]]:
    """Directories outside tmp_path a test made; removed after it."""
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_podman_pull_then_kiln_verify(
    published: Published, site: RunningSite, tmp_path: Path, request_cleanup: list[Path]
) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    # podman refuses a runroot path over 50 characters: a short one of its own
    runroot = Path(tempfile.mkdtemp(prefix="kiln-pm-"))
    request_cleanup.append(runroot)
    podman = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(runroot),
              "--storage-driver", "vfs", "--runtime", "runc"]  # fmt: skip
    reference = f"{site.host}/kiln/static:latest-dev"
    pull = subprocess.run([*podman, "pull", "--tls-verify=false", reference],
                          check=False, capture_output=True, text=True)  # fmt: skip
    assert pull.returncode == 0, pull.stderr
    pulled = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Digest}}", reference],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert pulled == _index_digest(published.store / "static-dev")
    # the image runs: its shell and coreutils are there
    limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    run = subprocess.run([*podman, "run", "--rm", "--network", "none", *limits, reference,
                          "echo", "hi"], check=False, capture_output=True, text=True)  # fmt: skip
    assert (run.returncode, run.stdout.strip()) == (0, "hi"), run.stderr
    key = ["--key", str(published.public_key)]
    assert main(["verify", f"{site.host}/kiln/static@{pulled}", *key]) == 0
    # a key that did not sign it is refused (exit 1)
    assert main(["keygen", "--out", str(tmp_path / "other"),
                 "--password-file", str(published.password_file)]) == 0  # fmt: skip
    other = ["--key", str(tmp_path / "other.pub")]
    assert main(["verify", f"{site.host}/kiln/static@{pulled}", *other]) == 1


def test_manifests_blobs_tags_and_referrers(published: Published, site: RunningSite) -> None:
    status, headers, body = request(site.host, "GET", "/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"

    status, headers, body = request(site.host, "GET", "/v2/kiln/static/manifests/latest")
    assert status == 200
    digest = _index_digest(published.store / "static")
    assert headers["docker-content-digest"] == digest
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    assert headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    index = json.loads(body)

    status, headers, head_body = request(site.host, "HEAD", f"/v2/kiln/static/manifests/{digest}")
    assert (status, head_body) == (200, b"")
    assert headers["content-length"] == str(len(body))
    assert headers["docker-content-digest"] == digest

    # a layer: whole, a range, a suffix range, an unsatisfiable range, HEAD
    child = index["manifests"][0]["digest"]
    _, _, manifest = request(site.host, "GET", f"/v2/kiln/static/manifests/{child}")
    layer = json.loads(manifest)["layers"][0]
    path = f"/v2/kiln/static/blobs/{layer['digest']}"
    status, headers, whole = request(site.host, "GET", path)
    assert status == 200
    assert "sha256:" + hashlib.sha256(whole).hexdigest() == layer["digest"]
    assert len(whole) == layer["size"]
    assert headers["docker-content-digest"] == layer["digest"]
    status, headers, part = request(site.host, "GET", path, {"Range": "bytes=100-199"})
    assert status == 206
    assert part == whole[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(whole)}"
    status, _, tail = request(site.host, "GET", path, {"Range": "bytes=-10"})
    assert (status, tail) == (206, whole[-10:])
    status, headers, _ = request(site.host, "GET", path, {"Range": f"bytes={len(whole) + 5}-"})
    assert status == 416
    status, headers, nothing = request(site.host, "HEAD", path)
    assert (status, nothing) == (200, b"")
    assert headers["content-length"] == str(layer["size"])

    status, _, body = request(site.host, "GET", "/v2/kiln/static/tags/list")
    assert status == 200
    assert json.loads(body) == {"name": "kiln/static", "tags": ["latest", "latest-dev"]}
    status, headers, body = request(site.host, "GET", "/v2/kiln/static/tags/list?n=1")
    assert json.loads(body)["tags"] == ["latest"]
    assert "last=latest" in headers["link"]
    _, _, body = request(site.host, "GET", "/v2/kiln/static/tags/list?n=1&last=latest")
    assert json.loads(body)["tags"] == ["latest-dev"]

    # referrers: the index's attestations (signature, provenance, 2 SBOMs per platform,
    # the test report), each a Sigstore bundle artifact with its predicate type
    status, headers, body = request(site.host, "GET", f"/v2/kiln/static/referrers/{digest}")
    assert status == 200
    assert headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    referrers = json.loads(body)["manifests"]
    kinds = sorted(r["annotations"]["dev.sigstore.bundle.predicateType"] for r in referrers)
    # signature, provenance, per platform (2) an SPDX, a CycloneDX and a test report
    assert len(kinds) == 8, kinds
    assert all(r["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
               for r in referrers)  # fmt: skip
    status, headers, body = request(
        site.host, "GET", f"/v2/kiln/static/referrers/{digest}?artifactType=application/none"
    )
    assert json.loads(body)["manifests"] == []
    assert headers["oci-filters-applied"] == "artifactType"
    artifact = referrers[0]["digest"]
    _, _, raw = request(site.host, "GET", f"/v2/kiln/static/manifests/{artifact}")
    bundle_layer = json.loads(raw)["layers"][0]
    status, _, bundle = request(site.host, "GET", f"/v2/kiln/static/blobs/{bundle_layer['digest']}")
    assert status == 200
    assert "sha256:" + hashlib.sha256(bundle).hexdigest() == bundle_layer["digest"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/v2/kiln/static/manifests/latest", 405, "UNSUPPORTED"),
        ("POST", "/v2/kiln/static/blobs/uploads/", 405, "UNSUPPORTED"),
        ("DELETE", "/v2/kiln/static/manifests/latest", 405, "UNSUPPORTED"),
        ("PATCH", "/v2/kiln/static/blobs/uploads/x", 405, "UNSUPPORTED"),
        ("POST", "/", 405, "UNSUPPORTED"),
        ("GET", "/v2/kiln/static/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/kiln/nothing/manifests/latest", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/library/static/manifests/latest", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/kiln/../../../etc/passwd/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/kiln/static/manifests/..%2f..%2fetc", 400, "MANIFEST_INVALID"),
        ("GET", "/v2/kiln/static/blobs/sha256:../../../../etc/passwd", 400, "DIGEST_INVALID"),
        ("GET", "/v2/kiln/static/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/kiln/static/blobs/sha512:" + "0" * 128, 400, "DIGEST_INVALID"),
        ("GET", "/v2/kiln/static/referrers/latest", 400, "DIGEST_INVALID"),
        ("GET", "/v2/kiln/static/tags/list?n=x", 400, "PAGINATION_NUMBER_INVALID"),
        ("GET", "/v2/KILN/Static/manifests/latest", 400, "NAME_INVALID"),
    ],
)
def test_refusals(site: RunningSite, method: str, path: str, status: int, code: str) -> None:
    got, headers, body = request(site.host, method, path)
    assert got == status, body
    assert json.loads(body)["errors"][0]["code"] == code
    if status == 405:
        assert headers["allow"] == "GET, HEAD"


def test_a_blob_that_does_not_match_its_digest_is_not_served(
    published: Published, tmp_path: Path
) -> None:
    """A layer changed on disk after the build: 500 with the reason, never the bytes."""
    store = tmp_path / "store"
    shutil.copytree(published.store / "static", store / "static")
    blobs = store / "static/blobs/sha256"
    top = json.loads((blobs / _index_digest(store / "static").split(":")[1]).read_text())
    child = top["manifests"][0]["digest"]
    layer = json.loads((blobs / child.split(":")[1]).read_text())["layers"][0]["digest"]
    blob = blobs / layer.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with serve(SiteConfig(store)) as running:
        status, _, body = request(running.host, "GET", f"/v2/kiln/static/blobs/{layer}")
        assert status == 500
        assert "does not match its digest" in json.loads(body)["errors"][0]["message"]
        # the manifests are still served: the damage is in one blob only
        status, _, _ = request(running.host, "GET", "/v2/kiln/static/manifests/latest")
        assert status == 200
        # and the pages say what they cannot know instead of failing
        status, _, body = request(running.host, "GET", "/api/v1/images/static")
        assert status == 200
        runtime = json.loads(body)["variants"][0]
        damaged = {p["arch"]: p["uncompressed"] for p in runtime["platform_details"]}
        assert damaged == {"amd64": None, "arm64": runtime["uncompressed"]["arm64"]}
        assert runtime["uncompressed"]["arm64"] > 0
        status, _, body = request(running.host, "GET", "/images/static")
        assert status == 200
        assert "unknown" in body.decode()


def test_kiln_scan_through_the_front_door(
    published: Published, site: RunningSite, tmp_path: Path
) -> None:
    """kiln scan pulls through the front door and applies the signed VEX it finds there."""
    out = tmp_path / "scan.json"
    code = main(["scan", f"{site.host}/kiln/static:latest-dev", "--platform", "linux/amd64",
                 "--key", str(published.public_key), "--db", published.db,
                 "--format", "json", "-o", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    statuses = {f["id"]: f["status"] for f in report["findings"]}
    assert statuses["CVE-2099-0004"] == "not_affected"  # the signed VEX
    assert statuses["CVE-2099-0003"] == "open"
