"""Root filesystem directories: distro, dpkg, Python, npm, and hostile symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inventory.builders import OS_RELEASE, make_rootfs, metadata, write
from kiln.errors import InputError
from kiln.inventory import Inventory, OsRelease, load_target


def _ids(inventory: Inventory) -> set[tuple[str, str, str, str | None]]:
    return {(p.ecosystem, p.name, p.version, p.source_name) for p in inventory.packages}


def test_rootfs_inventory(tmp_path: Path) -> None:
    root = make_rootfs(tmp_path / "root")
    inventory = load_target(root)
    assert inventory.warnings == ()
    assert inventory.distro == OsRelease(
        "debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)"
    )
    assert _ids(inventory) == {
        ("deb", "bash", "5.2.15-2+b2", "bash"),
        ("deb", "libc6", "2.36-9+deb12u4", "glibc"),
        ("deb", "openssl", "3.0.11-1~deb12u2", "openssl"),
        ("deb", "zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        ("pypi", "requests", "2.19.0", None),
        ("pypi", "pyyaml", "6.0.1", None),
        ("pypi", "zope-interface", "6.0", None),
        ("pypi", "six", "1.16.0", None),
        ("npm", "lodash", "4.17.15", None),
        ("npm", "@babel/core", "7.20.0", None),
        ("npm", "semver", "6.3.0", None),
    }
    by_name = {p.name: p for p in inventory.packages}
    assert by_name["pyyaml"].purl == "pkg:pypi/pyyaml@6.0.1"
    assert by_name["zope-interface"].locations == (
        "/usr/local/lib/python3.11/site-packages/zope.interface-6.0.egg-info/PKG-INFO",
    )
    assert by_name["@babel/core"].purl == "pkg:npm/%40babel/core@7.20.0"
    keys = [(p.ecosystem, p.name, p.version) for p in inventory.packages]
    assert keys == sorted(keys)
    assert load_target(root) == inventory  # deterministic


def test_os_release_fallback_and_quoting(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(
        root,
        "usr/lib/os-release",
        "# comment\nID='debian'\nPRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\n"
        "VERSION_CODENAME=trixie\nnot a line\n",
    )
    inventory = load_target(root)
    # testing has no VERSION_ID; the codename names the release it will become
    assert inventory.distro == OsRelease("debian", "13", "trixie", "Debian GNU/Linux trixie/sid")
    assert "/usr/lib/os-release:5: not a KEY=value line, ignored" in inventory.warnings


def test_no_os_release_is_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n")
    inventory = load_target(root)
    assert inventory.distro is None
    assert inventory.packages[0].purl == "pkg:deb/debian/a@1"
    assert any("distro unknown" in w for w in inventory.warnings)


def test_symlink_loops_do_not_hang_and_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "usr/lib/os-release", OS_RELEASE)
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("os-release-2")
    (root / "etc/os-release-2").symlink_to("/etc/os-release")
    (root / "usr/lib/python3").mkdir(parents=True)
    (root / "usr/lib/python3/loop").symlink_to("..")  # a directory cycle for the walker
    (root / "usr/lib/self").symlink_to("self")
    write(root, "usr/lib/python3/dist-packages/a-1.dist-info/METADATA", metadata("a", "1"))
    inventory = load_target(root)
    assert "/etc/os-release: symlink loop, not read" in inventory.warnings
    assert inventory.distro is not None  # fell back to /usr/lib/os-release
    assert inventory.distro.codename == "bookworm"
    assert [p.name for p in inventory.packages] == ["a"]


def test_symlinks_never_leave_the_root(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/os-release", "ID=evil\nVERSION_ID=666\n")
    write(tmp_path, "outside/status", "Package: evil\nStatus: install ok installed\nVersion: 1\n")
    root = tmp_path / "root"
    write(root, "inside/os-release", OS_RELEASE)
    (root / "etc").mkdir()
    # relative escape: resolves to /outside/os-release of the *root*, which does not exist
    (root / "etc/os-release").symlink_to("../../outside/os-release")
    # absolute target: means the root's own /inside/os-release, not the host's
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").symlink_to("/inside/os-release")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").symlink_to(str(tmp_path / "outside/status"))
    inventory = load_target(root)
    assert outside.exists()
    assert inventory.distro is not None
    assert inventory.distro.id == "debian"
    assert inventory.packages == ()


def test_python_and_npm_oddities_warn_but_do_not_stop(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "etc/os-release", OS_RELEASE)
    write(root, "site-packages/noname-1.dist-info/METADATA", "Metadata-Version: 2.1\nVersion: 1\n")
    write(root, "app/node_modules/broken/package.json", '{"name": "broken", ')
    write(root, "app/node_modules/list/package.json", "[1, 2]")
    write(root, "app/node_modules/noversion/package.json", '{"name": "noversion"}')
    write(root, "app/node_modules/ok/package.json", '{"name": "ok", "version": "1.0.0"}')
    inventory = load_target(root)
    assert [p.name for p in inventory.packages] == ["ok"]
    assert sorted(inventory.warnings) == [
        "/app/node_modules/broken/package.json:1:20: the file is not JSON: Expecting property name "
        "enclosed in double quotes, skipped",
        "/app/node_modules/list/package.json: not a JSON object, skipped",
        "/site-packages/noname-1.dist-info/METADATA: core metadata without Name and Version, "
        "skipped",
    ]


LOCK_V1 = """{
  "name": "app", "version": "1.0.0", "lockfileVersion": 1,
  "dependencies": {
    "lodash": {"version": "4.17.15"},
    "jest": {"version": "29.0.0", "dev": true},
    "mine": {"version": "file:../mine"},
    "express": {"version": "4.18.2", "dependencies": {"debug": {"version": "2.6.9"}}}
  }
}"""

LOCK_V3 = """{
  "name": "app", "version": "1.0.0", "lockfileVersion": 3,
  "packages": {
    "": {"name": "app", "version": "1.0.0"},
    "node_modules/lodash": {"version": "4.17.15"},
    "node_modules/jest": {"version": "29.0.0", "dev": true},
    "node_modules/ws": {"resolved": "packages/ws", "link": true},
    "node_modules/@types/node": {"version": "20.1.0"},
    "node_modules/express": {"version": "4.18.2"},
    "node_modules/express/node_modules/debug": {"version": "2.6.9"},
    "node_modules/alias": {"name": "real-name", "version": "2.0.0"}
  }
}"""


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        (LOCK_V1, {"lodash@4.17.15", "express@4.18.2", "debug@2.6.9"}),
        (
            LOCK_V3,
            {
                "lodash@4.17.15",
                "@types/node@20.1.0",
                "express@4.18.2",
                "debug@2.6.9",
                "real-name@2.0.0",
            },
        ),
        (LOCK_V3.replace('"lockfileVersion": 3', '"lockfileVersion": 2'), None),
    ],
)
def test_package_lock_versions(tmp_path: Path, lock: str, expected: set[str] | None) -> None:
    root = tmp_path / "root"
    write(root, "etc/os-release", OS_RELEASE)
    write(root, "srv/app/package-lock.json", lock)
    write(root, "srv/app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.15"}')
    inventory = load_target(root)
    assert inventory.warnings == ()
    found = {f"{p.name}@{p.version}" for p in inventory.packages}
    assert found == (
        expected
        or {
            "lodash@4.17.15",
            "@types/node@20.1.0",
            "express@4.18.2",
            "debug@2.6.9",
            "real-name@2.0.0",
        }
    )
    lodash = next(p for p in inventory.packages if p.name == "lodash")
    assert lodash.locations == (
        "/srv/app/node_modules/lodash/package.json",
        "/srv/app/package-lock.json",
    )


def test_missing_target(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        load_target(tmp_path / "nope")


def test_special_files_are_not_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "usr/lib/os-release", OS_RELEASE)
    (root / "etc").mkdir()
    os.mkfifo(root / "etc/os-release")  # opening a fifo would block forever
    inventory = load_target(root)
    assert inventory.distro is not None


@pytest.mark.parametrize(
    ("debian_version", "expected"),
    [
        ("12.11\n", OsRelease("debian", "12", "bookworm", None)),
        ("trixie/sid\n", OsRelease("debian", "13", "trixie", None)),
    ],
)
def test_debian_version_is_the_fallback_without_os_release(
    tmp_path: Path, debian_version: str, expected: OsRelease
) -> None:
    root = tmp_path / "root"
    write(root, "etc/debian_version", debian_version)
    inventory = load_target(root)
    assert inventory.distro == expected
    assert any("distro taken from /etc/debian_version" in w for w in inventory.warnings)
