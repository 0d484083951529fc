"""python-dev and python behave like python:3.13-slim and distroless python (issue 6).

Network tests on the real images (host architecture): what a Dockerfile written for the
official images does, run in bubblewrap on writable copies of the unpacked images, as
root in -dev (a RUN step) and as 65532 in the runtime:

* ``pip install --upgrade pip setuptools wheel`` and ``pip install --prefix=/install``;
  ``COPY --from=build /install /usr/local`` into the runtime, whose interpreter then
  finds the packages and runs the pip-made console script (shebang
  /usr/local/bin/python3.13);
* ``python -m venv /opt/venv`` + pip in it, copied into the runtime;
* ``apt-get update && apt-get install -y <pkg>`` against kiln's configured mirrors;
* ``useradd``.

The sandbox maps one uid only, so apt is told not to drop to ``_apt``
(``APT::Sandbox::User=root``); the host CA bundle and resolv.conf are bound in as a
container runtime and the compat suite's builds provide them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.sandbox.unpack import host_arch, remove_rootfs, resolve_image, unpack_image

pytestmark = pytest.mark.network

PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Writable unpacked copies of python (runtime) and python-dev for the host arch."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    out = tmp_path_factory.mktemp("out")
    spec = staged_spec("python", tmp_path_factory.mktemp("specs"))
    code = main(["build", str(spec), "--refresh", "--output", str(out), "--arch", host_arch()])
    assert code == 0
    roots = {}
    for name in ("python", "python-dev"):
        dest = tmp_path_factory.mktemp(name) / "rootfs"
        unpack_image(resolve_image(out / name, arch=host_arch()), dest)
        roots[name] = dest
    yield roots
    for path in roots.values():
        remove_rootfs(path)


def run(
    root: Path, argv: Sequence[str], *, uid: int = 0, network: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--bind", str(root), "/"]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if network:
        cmd += ["--share-net", "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        if HOST_CA.is_file():
            cmd += ["--ro-bind", str(HOST_CA), str(HOST_CA)]
    cmd += ["--uid", str(uid), "--gid", str(uid), "--clearenv"]
    home = "/root" if uid == 0 else "/home/nonroot"
    for key, value in (("PATH", PATH), ("LANG", "C.UTF-8"), ("HOME", home)):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", "/", "--", *argv]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr[-3000:]}"
    return result


def copy_tree(src: Path, dest: Path) -> None:
    """``COPY --from=build SRC DEST``: merge a tree into the image, symlinks kept."""
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)


def test_pip_upgrades_itself_and_installs_setuptools_and_wheel(rootfs: dict[str, Path]) -> None:
    dev = rootfs["python-dev"]
    run(dev, ["pip", "install", "-q", "--upgrade", "pip", "setuptools", "wheel"], network=True)
    listed = run(dev, ["pip", "list", "--format=freeze"]).stdout
    assert {"pip", "setuptools", "wheel"} <= {line.split("==")[0] for line in listed.split()}
    # the upgraded pip is still at /usr/local/bin with the shebang the runtime has
    assert (dev / "usr/local/bin/pip").read_text().startswith("#!/usr/local/bin/python3.13\n")


def test_prefix_install_copied_into_the_runtime_runs_as_nonroot(rootfs: dict[str, Path]) -> None:
    dev, runtime = rootfs["python-dev"], rootfs["python"]
    run(dev, ["pip", "install", "-q", "--prefix=/install", "gunicorn"], network=True)
    script = dev / "install/bin/gunicorn"
    assert script.read_text().startswith("#!/usr/local/bin/python3.13\n")
    assert (dev / "install/lib/python3.13/site-packages/gunicorn").is_dir()
    copy_tree(dev / "install", runtime / "usr/local")
    version = run(runtime, ["/usr/local/bin/gunicorn", "--version"], uid=65532).stdout
    assert version.startswith("gunicorn (version ")
    probe = "import gunicorn, sys; print(gunicorn.__file__, sys.executable)"
    found = run(runtime, ["/usr/bin/python3.13", "-c", probe], uid=65532).stdout
    assert found.startswith("/usr/local/lib/python3.13/site-packages/gunicorn/__init__.py ")


def test_prefix_install_by_usr_bin_python3_is_found_too(rootfs: dict[str, Path]) -> None:
    """/usr/bin/python3 -m pip --prefix: Debian's pip wheel uses Debian's posix_local
    scheme (<prefix>/local/lib/python3.13/dist-packages), an upgraded upstream pip the
    official layout (<prefix>/lib/python3.13/site-packages); both are found once copied.
    """
    dev, runtime = rootfs["python-dev"], rootfs["python"]
    pip = ["/usr/bin/python3", "-m", "pip", "install", "-q", "--prefix=/install-deb", "six"]
    run(dev, pip, network=True)
    (six,) = (dev / "install-deb").rglob("six.py")
    relative = six.relative_to(dev / "install-deb").as_posix()
    assert relative in (
        "local/lib/python3.13/dist-packages/six.py",
        "lib/python3.13/site-packages/six.py",
    )
    copy_tree(dev / "install-deb", runtime / "usr/local")
    probe = "import six; print(six.__file__)"
    found = run(runtime, ["/usr/bin/python3.13", "-c", probe], uid=65532).stdout.strip()
    assert found == f"/usr/local/{relative}"


def test_venv_built_in_dev_runs_in_the_runtime(rootfs: dict[str, Path]) -> None:
    dev, runtime = rootfs["python-dev"], rootfs["python"]
    run(dev, ["python", "-m", "venv", "/opt/venv"])
    run(dev, ["/opt/venv/bin/pip", "install", "-q", "six"], network=True)
    assert (dev / "opt/venv/bin/python3.13").readlink() == Path("/usr/bin/python3.13")
    copy_tree(dev / "opt/venv", runtime / "opt/venv")
    probe = "import six, sys; print(sys.prefix, six.__file__)"
    out = run(runtime, ["/opt/venv/bin/python", "-c", probe], uid=65532).stdout.split()
    assert out == ["/opt/venv", "/opt/venv/lib/python3.13/site-packages/six.py"]


def test_apt_get_install_works_against_the_configured_mirrors(rootfs: dict[str, Path]) -> None:
    dev = rootfs["python-dev"]
    apt = ["apt-get", "-o", "APT::Sandbox::User=root"]
    run(dev, [*apt, "update", "-q"], network=True)
    run(dev, [*apt, "install", "-y", "-q", "--no-install-recommends", "libpq5"], network=True)
    status = run(dev, ["dpkg-query", "-W", "-f=${Status}", "libpq5"]).stdout
    assert status == "install ok installed"
    # dpkg's path-exclude keeps PEP 668's marker out when apt (re)installs the stdlib
    run(dev, [*apt, "install", "-y", "-q", "--reinstall", "libpython3.13-stdlib"], network=True)
    assert (dev / "usr/lib/python3.13/os.py").is_file()
    assert not list(dev.glob("usr/lib/python3*/EXTERNALLY-MANAGED"))


def test_useradd_creates_an_account(rootfs: dict[str, Path]) -> None:
    dev = rootfs["python-dev"]
    run(dev, ["useradd", "--create-home", "--uid", "1000", "app"])
    assert run(dev, ["id", "-u", "app"]).stdout.strip() == "1000"
    assert (dev / "home/app").is_dir()
