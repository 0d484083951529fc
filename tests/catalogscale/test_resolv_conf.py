"""A networked test sees the host's resolver through the image's own /etc/resolv.conf
(as container runtimes mount it), and never through an image symlink (a host path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.sandbox.bwrap import bwrap_argv

BIND = ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]


def _binds(argv: list[str]) -> bool:
    return any(argv[i : i + 3] == BIND for i in range(len(argv)))


@pytest.mark.skipif(not os.path.isfile("/etc/resolv.conf"), reason="the host has no resolver")
def test_resolver_bound_only_with_network_and_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc/resolv.conf"
    conf.write_text("")
    assert _binds(bwrap_argv(tmp_path, ["/bin/true"], uid=0, gid=0, env={}, network=True))
    assert not _binds(bwrap_argv(tmp_path, ["/bin/true"], uid=0, gid=0, env={}))
    conf.unlink()
    assert not _binds(bwrap_argv(tmp_path, ["/bin/true"], uid=0, gid=0, env={}, network=True))
    conf.symlink_to("/etc/hostname")  # an image link pointing at a host file
    assert not _binds(bwrap_argv(tmp_path, ["/bin/true"], uid=0, gid=0, env={}, network=True))
