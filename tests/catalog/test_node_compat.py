"""node-dev as a drop-in for node:20-slim: npm and corepack from the npm registry.

Offline: the spec pins npm and corepack for -dev and the lock holds their integrity.
Network (the Debian archive and the npm registry, read from `npm config get registry`):
node-dev is built, unpacked to a writable copy, and `npm install`, `npm ci` (with the
package-lock.json npm wrote), `npm install -g` and corepack's yarn run in it as root and
as the node user, the way a Dockerfile's RUN steps would.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.resolve.lockfile import read_lock
from kiln.sandbox import bwrap_argv, resolve_image, unpack_image
from kiln.sandbox.unpack import UnpackedImage, host_arch, remove_rootfs
from kiln.spec import load_spec
from kiln.upstream import registry_url

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "images" / "node.yaml"


def test_dev_pins_npm_and_corepack_and_the_lock_has_their_integrity() -> None:
    loaded = load_spec(SPEC)
    pinned = dict(loaded.spec.npm_for("dev"))
    assert pinned["npm"].startswith("10.")  # the npm of Node 20
    assert "corepack" in pinned
    assert loaded.spec.npm_for("runtime") == ()  # the runtime has no npm
    locked = {p.name: p for p in read_lock(loaded.lock_path).npm_packages("dev")}
    assert {n: p.version for n, p in locked.items()} == pinned
    assert all(p.integrity.startswith("sha512-") for p in locked.values())
    assert not read_lock(loaded.lock_path).npm_packages("runtime")


def test_the_node_user_is_uid_1000_as_in_the_official_image() -> None:
    [user] = [u for u in load_spec(SPEC).spec.accounts.users if u.name == "node"]
    assert (user.uid, user.gid, user.home) == (1000, 1000, "/home/node")


@pytest.fixture(scope="module")
def node_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpackedImage]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    out = tmp_path_factory.mktemp("out")
    spec = staged_spec("node", tmp_path_factory.mktemp("specs"))
    argv = ["build", str(spec), "--refresh", "--output", str(out), "--variant", "dev"]
    code = main([*argv, "--arch", host_arch()])
    assert code == 0
    rootfs = tmp_path_factory.mktemp("rootfs") / "node-dev"
    unpacked = unpack_image(resolve_image(out / "node-dev"), rootfs)
    for name in ("resolv.conf", "hosts"):  # what a container runtime mounts
        shutil.copyfile(Path("/etc") / name, rootfs / "etc" / name)
    # the host's CA bundle, as the compat suite mounts it for RUN steps reaching registries
    # (a TLS-inspecting proxy's CA is trusted on the host only)
    bundle = rootfs / "etc/ssl/certs/ca-certificates.crt"
    bundle.unlink()
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", bundle)
    yield unpacked
    remove_rootfs(rootfs)


def _run(
    image: UnpackedImage, script: str, *, uid: int, home: str
) -> subprocess.CompletedProcess[str]:
    """A RUN step: bash -c in the image with the host network and a writable root."""
    env = dict(image.image.config.env)
    env.update(
        HOME=home,
        NPM_CONFIG_REGISTRY=registry_url(),
        COREPACK_NPM_REGISTRY=registry_url().rstrip("/"),
    )
    env.update(COREPACK_ENABLE_DOWNLOAD_PROMPT="0", NPM_CONFIG_UPDATE_NOTIFIER="false")
    argv = bwrap_argv(
        image.rootfs, ["/bin/bash", "-ec", script], uid=uid, gid=uid, env=env, network=True
    )
    argv[argv.index("--ro-bind")] = "--bind"  # RUN steps write into the image
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


APP = """
mkdir -p {dir} && cd {dir}
echo '{{"name": "app", "version": "1.0.0", "dependencies": {{"ms": "2.1.3"}}}}' > package.json
npm install --no-audit --no-fund
test -f package-lock.json
rm -rf node_modules
npm ci --no-audit --no-fund
node -p "require('ms')('2 days')"
"""


@pytest.mark.network
@pytest.mark.parametrize(
    ("user", "uid", "home"), [("root", 0, "/root"), ("node", 1000, "/home/node")]
)
def test_npm_install_and_npm_ci_fetch_a_real_dependency(
    node_dev: UnpackedImage, user: str, uid: int, home: str
) -> None:
    run = _run(node_dev, APP.format(dir=f"{home}/app-{user}"), uid=uid, home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "172800000"


@pytest.mark.network
def test_npm_install_g_goes_to_usr_local_as_in_the_official_image(node_dev: UnpackedImage) -> None:
    script = (
        "npm install -g --no-audit --no-fund semver@7.6.3 >/dev/null;"
        "command -v semver; semver -r '>=1.2' 1.2.3"
    )
    run = _run(node_dev, script, uid=0, home="/root")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["/usr/local/bin/semver", "1.2.3"]
    assert (node_dev.rootfs / "usr/local/lib/node_modules/semver/package.json").is_file()


@pytest.mark.network
def test_corepack_yarn_shim_fetches_yarn(node_dev: UnpackedImage) -> None:
    # the yarn version this corepack pins (and hashes), not a "latest" lookup
    script = "cd /tmp && COREPACK_DEFAULT_TO_LATEST=0 yarn --version"
    run = _run(node_dev, script, uid=1000, home="/home/node")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1].startswith("1.22.")
