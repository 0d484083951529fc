"""kiln's signed apt repository, read back by kiln's own repository client and by apt."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, RepoServer, build_deb
from kiln.aptrepo import KEYRING_NAME, SigningKey, ensure_signing_key, publish
from kiln.debian.cache import Cache
from kiln.debian.distro import Distro
from kiln.debian.source_index import load_sources
from kiln.errors import InputError
from kiln.net import HttpFetcher, RetryPolicy

DATE = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
KILN = Distro("kiln", "0", "kiln")


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    key = ensure_signing_key(tmp_path_factory.mktemp("kiln-gnupg"))
    yield key
    subprocess.run(
        ["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False, timeout=30
    )


def test_signing_key_is_created_once(signing_key: SigningKey) -> None:
    assert ensure_signing_key(signing_key.home).fingerprint == signing_key.fingerprint


def _dsc(tmp_path: Path) -> Path:
    tree = tmp_path / "jq-1.0"
    (tree / "debian" / "source").mkdir(parents=True)
    (tree / "debian" / "source" / "format").write_text("3.0 (native)\n")
    (tree / "debian" / "control").write_text(
        "Source: jq\nMaintainer: k <k@kiln.invalid>\n\nPackage: jq\nArchitecture: any\n"
        "Description: x\n y\n"
    )
    (tree / "debian" / "changelog").write_text(
        "jq (1.0+kiln1) kiln; urgency=medium\n\n  * x\n\n"
        " -- k <k@kiln.invalid>  Thu, 15 Jan 2026 12:00:00 +0000\n"
    )
    subprocess.run(["dpkg-source", "-b", tree.name], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return tmp_path / "jq_1.0+kiln1.dsc"


def test_published_repository_verifies_with_kilns_client(
    signing_key: SigningKey, tmp_path: Path
) -> None:
    deb = build_deb(
        DebSpec("jq", "1.7.1-6+deb13u4+kiln1", arch="amd64", source="jq"), tmp_path / "jq.deb"
    )
    repo = tmp_path / "repo"
    published = publish(repo, [deb, _dsc(tmp_path / "src")], key=signing_key, date=DATE,
                        archs=("amd64",))  # fmt: skip
    assert (repo / KEYRING_NAME).is_file()
    assert (repo / "pool/main/j/jq/jq.deb").is_file()
    assert published.sources == ("jq_1.0+kiln1",)
    # kiln's client reads a distro's three suites; serve the same pool under each.
    for suite in ("kiln-updates", "kiln-security"):
        publish(repo, [], key=signing_key, date=DATE, suite=suite, archs=("amd64",))
    from kiln.debian.client import load_snapshot

    with RepoServer(repo) as server:
        snapshot = load_snapshot(
            KILN, ["amd64"], cache=Cache(tmp_path / "cache"),
            fetcher=HttpFetcher(retry=RetryPolicy(attempts=1)),
            mirrors={"kiln": server.url, "kiln-updates": server.url, "kiln-security": server.url},
            now=DATE + timedelta(hours=1), keyring=published.keyring,
        )  # fmt: skip
        package = snapshot.universe("amd64").get("jq")
        assert package is not None
        assert package.version == "1.7.1-6+deb13u4+kiln1"
        assert package.filename == "pool/main/j/jq/jq.deb"
        sources = load_sources(
            KILN, cache=Cache(tmp_path / "cache2"),
            fetcher=HttpFetcher(retry=RetryPolicy(attempts=1)),
            mirrors={"kiln": server.url}, now=DATE, keyring=published.keyring,
            suites=("kiln",),
        )  # fmt: skip
        assert sources.newest("jq").version == "1.0+kiln1"


def test_apt_accepts_the_signed_repository(signing_key: SigningKey, tmp_path: Path) -> None:
    deb = build_deb(DebSpec("hello-kiln", "1.0+kiln1", arch="all"), tmp_path / "h.deb")
    repo = tmp_path / "repo"
    published = publish(repo, [deb], key=signing_key, date=DATE, archs=("amd64",))
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/sources.list.d",
                "etc/preferences.d", "etc/apt.conf.d"):  # fmt: skip
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").write_text("")
    (state / "etc" / "sources.list").write_text(
        f"deb [signed-by={published.keyring}] file:{repo} kiln main\n"
    )
    options = [
        f"-oDir::Etc={state / 'etc'}", f"-oDir::State={state}",
        f"-oDir::State::status={state / 'status'}", f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Architecture=amd64", "-oAcquire::Check-Valid-Until=false",
        "-oDebug::NoLocking=1",
    ]  # fmt: skip
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, timeout=120,
                            check=False)  # fmt: skip
    assert update.returncode == 0, update.stderr.decode()
    assert b"NO_PUBKEY" not in update.stderr
    policy = subprocess.run(["apt-cache", *options, "policy", "hello-kiln"],
                            capture_output=True, timeout=60, check=True)  # fmt: skip
    assert b"1.0+kiln1" in policy.stdout


def test_only_debs_and_dscs_are_published(signing_key: SigningKey, tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InputError, match=r"only \.deb and \.dsc"):
        publish(tmp_path / "repo", [other], key=signing_key, date=DATE)
