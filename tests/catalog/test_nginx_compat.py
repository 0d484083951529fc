"""nginx with the official image's conventions, and what a user's Dockerfile does to it.

Offline: the spec's nginx.conf includes conf.d, logs are linked to stdout/stderr, the
runtime listens on 8080 and says so in its compatibility notes. Network (the Debian
archive): the runtime image is built and unpacked, then what `COPY site/
/usr/share/nginx/html` and `COPY my.conf /etc/nginx/conf.d/default.conf` would do is
done to the unpacked root, and the image's default command serves the result as nonroot.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.catalog import staged_spec
from kiln.assemble.model import ImageTest, Probe
from kiln.cli.main import main
from kiln.compat.containers import Store, run
from kiln.compat.probe import free_port, wait_until_answering
from kiln.migrate import DirectoryContext, Rewrite, load_catalog, migrate
from kiln.sandbox import resolve_image, run_test, unpack_image
from kiln.sandbox.unpack import UnpackedImage, host_arch, remove_rootfs
from kiln.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "images" / "nginx.yaml"


def _paths(variant: str) -> dict[str, str]:
    spec = load_spec(SPEC).spec
    paths = (*spec.paths, *(spec.variant(variant).paths if variant != "runtime" else ()))
    return {p.path: p.content or p.target or "" for p in paths}


@pytest.mark.parametrize("variant", ["runtime", "dev"])
def test_the_official_layout(variant: str) -> None:
    paths = _paths(variant)
    conf = paths["/etc/nginx/nginx.conf"]
    assert "include /etc/nginx/conf.d/*.conf;" in conf
    assert "access_log  /var/log/nginx/access.log  main;" in conf
    assert paths["/var/log/nginx/access.log"] == "/dev/stdout"
    assert paths["/var/log/nginx/error.log"] == "/dev/stderr"
    assert "root   /usr/share/nginx/html;" in paths["/etc/nginx/conf.d/default.conf"]
    assert "An error occurred." in paths["/usr/share/nginx/html/50x.html"]
    assert load_spec(SPEC).spec.cmd == ("/usr/sbin/nginx", "-g", "daemon off;")


def test_runtime_is_unprivileged_on_8080_and_says_so() -> None:
    paths = _paths("runtime")
    assert "listen       8080;" in paths["/etc/nginx/conf.d/default.conf"]
    assert "pid        /tmp/nginx.pid;" in paths["/etc/nginx/nginx.conf"]
    assert "\nuser" not in paths["/etc/nginx/nginx.conf"]
    assert any("8080" in note for note in load_spec(SPEC).spec.compatibility.notes)


def test_dev_is_the_official_configuration_on_port_80() -> None:
    paths = _paths("dev")
    assert "listen       80;" in paths["/etc/nginx/conf.d/default.conf"]
    assert paths["/etc/nginx/nginx.conf"].startswith("user  nginx;\n")


@pytest.fixture(scope="module")
def nginx_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    out = tmp_path_factory.mktemp("out")
    spec = staged_spec("nginx", tmp_path_factory.mktemp("specs"))
    argv = ["build", str(spec), "--refresh", "--output", str(out), "--variant", "runtime"]
    code = main([*argv, "--arch", host_arch()])
    assert code == 0
    return out / "nginx"


@pytest.fixture
def nginx(nginx_layout: Path, tmp_path: Path) -> Iterator[UnpackedImage]:
    unpacked = unpack_image(resolve_image(nginx_layout), tmp_path / "rootfs")
    yield unpacked
    remove_rootfs(unpacked.rootfs)


def _serve(image: UnpackedImage, path: str, expect: str) -> str:
    """Run the image's own command as its user; GET ``path`` on 8080; return stdout."""
    config = image.image.config
    test = ImageTest(
        name=f"GET {path}",
        command=(*config.entrypoint, *config.cmd),
        timeout=30,
        probe=Probe(8080, expect, f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
    )
    outcome = run_test(image, test)
    assert outcome.status == "passed", outcome.message
    assert outcome.result is not None
    return outcome.result.stdout


@pytest.mark.network
def test_a_copied_site_is_served_and_the_access_log_is_stdout(nginx: UnpackedImage) -> None:
    html = nginx.rootfs / "usr/share/nginx/html"
    (html / "index.html").write_text("<h1>my site</h1>\n")  # COPY site/ /usr/share/nginx/html
    (html / "docs").mkdir()
    (html / "docs/index.html").write_text("<p>docs</p>\n")
    stdout = _serve(nginx, "/", r"(?s)^HTTP/1\.1 200 OK.*<h1>my site</h1>")
    assert '"GET / HTTP/1.0" 200' in stdout
    _serve(nginx, "/docs/", r"(?s)^HTTP/1\.1 200 OK.*<p>docs</p>")
    _serve(nginx, "/missing", r"^HTTP/1\.1 404 Not Found")


@pytest.mark.network
def test_a_copied_default_conf_replaces_the_server(nginx: UnpackedImage) -> None:
    conf = nginx.rootfs / "etc/nginx/conf.d/default.conf"
    conf.write_text(  # COPY my.conf /etc/nginx/conf.d/default.conf
        "server {\n"
        "    listen 8080;\n"
        "    location = /healthz { default_type text/plain; return 200 'healthy\\n'; }\n"
        "    location / { return 301 /healthz; }\n"
        "}\n"
    )
    _serve(nginx, "/healthz", r"(?s)^HTTP/1\.1 200 OK.*\r\n\r\nhealthy\n")
    _serve(nginx, "/", r"(?s)^HTTP/1\.1 301 .*Location: http://localhost(:8080)?/healthz")


# ---------------------------------------------- kiln migrate and privileged ports

SITE_CONF = """\
# my site
server {{
    {listen}
    server_name  localhost;
    location / {{ root /usr/share/nginx/html; }}
}}
"""
NGINX_DOCKERFILE = """\
FROM nginx:1.26
COPY conf/ /etc/nginx/conf.d/
COPY site/ /usr/share/nginx/html/
"""


def _migrate_with_context(tmp_path: Path, listen: str) -> Rewrite:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "site.conf").write_text(SITE_CONF.format(listen=listen))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>listen 80;</h1>\n")  # not a config
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(NGINX_DOCKERFILE)
    catalog = load_catalog(ROOT / "images")
    context = DirectoryContext(tmp_path)
    migration = migrate(dockerfile.read_text(), catalog, "registry.example/kiln", context=context)
    [outcome] = migration.outcomes
    assert isinstance(outcome, Rewrite)
    return outcome


@pytest.mark.parametrize(
    "listen", ["listen 80;", "listen [::]:443 ssl;", "listen 127.0.0.1;", "listen 8080; listen 80;"]
)
def test_a_config_on_a_privileged_port_migrates_to_dev_and_says_why(
    tmp_path: Path, listen: str
) -> None:
    outcome = _migrate_with_context(tmp_path, listen)
    assert outcome.variant == "dev"
    assert outcome.replacement == "registry.example/kiln/nginx:1.26-dev"
    assert "conf/site.conf:3" in outcome.why
    assert "cannot bind ports below 1024" in outcome.why


@pytest.mark.parametrize(
    "listen", ["listen 8080;", "listen [::]:8443 ssl;", "# listen 80;", "listen unix:/tmp/s;"]
)
def test_a_config_on_an_unprivileged_port_keeps_the_runtime(tmp_path: Path, listen: str) -> None:
    outcome = _migrate_with_context(tmp_path, listen)
    assert outcome.variant == "runtime"
    assert outcome.replacement == "registry.example/kiln/nginx:1.26"


def test_the_context_is_never_left(tmp_path: Path) -> None:
    outside = tmp_path / "outside.conf"
    outside.write_text(SITE_CONF.format(listen="listen 80;"))
    context_dir = tmp_path / "ctx"
    context_dir.mkdir()
    (context_dir / "link.conf").symlink_to(outside)
    context = DirectoryContext(context_dir)
    assert list(context.files("../outside.conf")) == []
    assert list(context.files("link.conf")) == []
    assert list(context.files("/")) == []


@pytest.mark.network
def test_a_migrated_port_80_site_runs_unchanged_under_podman(tmp_path: Path) -> None:
    """compat/nginx-port80: migrated, built with buildah and published with -p HOST:80."""
    if not all(shutil.which(tool) for tool in ("podman", "buildah", "skopeo")):
        pytest.skip("podman, buildah and skopeo are needed")
    app = ROOT / "compat" / "nginx-port80"
    text = (app / "Dockerfile").read_text()
    context = DirectoryContext(app)
    migration = migrate(text, load_catalog(ROOT / "images"), "localhost/kiln", context=context)
    [outcome] = migration.outcomes
    assert isinstance(outcome, Rewrite)
    assert outcome.variant == "dev"
    out = tmp_path / "out"
    spec = staged_spec("nginx", tmp_path / "spec")
    argv = ["build", str(spec), "--refresh", "--output", str(out), "--variant", "dev"]
    assert main([*argv, "--arch", host_arch()]) == 0
    layout = out / "nginx-dev"
    [tag] = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((layout / "index.json").read_text())["manifests"]
    ]
    build_context = tmp_path / "app"
    shutil.copytree(app, build_context)
    (build_context / "Dockerfile").write_text(migration.migrated)  # only FROM changed
    directory = Path(tempfile.mkdtemp(prefix="kiln-ng-"))  # podman: runroot <= 50 chars
    store = Store.under(directory)
    name = f"kiln-nginx-port80-{os.getpid()}"
    try:
        copied = run(
            ["skopeo", "copy", f"oci:{layout}:{tag}", store.transport + outcome.replacement],
            timeout=600,
        )
        assert copied.ok, copied.tail()
        image = "localhost/nginx-port80:test"
        built = run(
            store.build_argv(build_context, build_context / "Dockerfile", image), timeout=900
        )
        assert built.ok, built.tail()
        port = free_port()
        started = run(store.run_argv(image, name, publish=(port, 80)), timeout=120)
        assert started.ok, started.tail()
        problem = wait_until_answering(port, 60, alive=lambda: True)
        assert problem is None, problem + "\n" + store.logs(name).tail()
        with httpx.Client(timeout=10) as client:
            page = client.get(f"http://127.0.0.1:{port}/")
            api = client.get(f"http://127.0.0.1:{port}/api/status")
        assert page.status_code == 200
        assert "served on port 80" in page.text
        assert page.headers["x-site"] == "kiln-compat"
        assert api.json() == {"ok": True}
    finally:
        store.remove_container(name)
        shutil.rmtree(directory, ignore_errors=True)
