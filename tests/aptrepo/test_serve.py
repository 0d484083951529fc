"""kiln serve: a published repository over loopback HTTP, to kiln's client, apt, and attackers."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.aptrepo import (
    PublishedRepository,
    SigningKey,
    check_repository,
    ensure_signing_key,
    publish,
    serving,
)
from kiln.aptrepo.serve import RepositoryHTTPServer, bind, resolve_request
from kiln.errors import InputError
from kiln.net import is_loopback_host

DATE = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
SECRET = b"outside the repository\n"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublishedRepository]:
    """A signed repository with one .deb, next to a secret file it must never serve."""
    base = tmp_path_factory.mktemp("serve")
    key: SigningKey = ensure_signing_key(base / "gnupg")
    deb = build_deb(DebSpec("hello-kiln", "1.0+kiln1", arch="all"), base / "hello-kiln.deb")
    repo = base / "repo"
    result = publish(repo, [deb], key=key, date=DATE, archs=("amd64",))
    (base / "secret.txt").write_bytes(SECRET)
    (repo / "escape").symlink_to(base / "secret.txt")  # a symlink leaving the tree
    (repo / "escape-dir").symlink_to(base)
    (repo / "dists" / "kiln" / "inside").symlink_to("InRelease")  # stays inside: served
    (repo / ".hidden").write_bytes(b"not for clients\n")
    yield result
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False,
                   timeout=30)  # fmt: skip


@pytest.fixture(scope="module")
def server(published: PublishedRepository) -> Iterator[RepositoryHTTPServer]:
    with serving(check_repository(published.directory)) as running:
        yield running


def _request(
    server: RepositoryHTTPServer,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """Send ``path`` byte for byte (no client-side normalisation of ``..``)."""
    host, port = server.server_address[0], server.server_address[1]
    connection = http.client.HTTPConnection(str(host), port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_inrelease_and_deb_are_served_byte_for_byte(
    server: RepositoryHTTPServer, published: PublishedRepository
) -> None:
    deb_path = next((published.directory / "pool").rglob("*.deb"))
    for relative in ("dists/kiln/InRelease", deb_path.relative_to(published.directory).as_posix()):
        local = published.directory / relative
        response, body = _request(server, f"/{relative}")
        assert response.status == 200
        assert body == local.read_bytes()
        assert response.getheader("Content-Length") == str(local.stat().st_size)
        modified = parsedate_to_datetime(response.getheader("Last-Modified") or "")
        assert int(modified.timestamp()) == int(local.stat().st_mtime)
    response, _ = _request(server, "/" + deb_path.relative_to(published.directory).as_posix())
    assert response.getheader("Content-Type") == "application/vnd.debian.binary-package"


def test_head_has_the_headers_and_no_body(
    server: RepositoryHTTPServer, published: PublishedRepository
) -> None:
    response, body = _request(server, "/dists/kiln/Release", method="HEAD")
    assert response.status == 200
    assert body == b""
    size = (published.directory / "dists/kiln/Release").stat().st_size
    assert response.getheader("Content-Length") == str(size)
    assert response.getheader("Server") == "kiln-serve"  # no Python version disclosed


def test_if_modified_since_gives_304(
    server: RepositoryHTTPServer, published: PublishedRepository
) -> None:
    mtime = (published.directory / "dists/kiln/InRelease").stat().st_mtime
    later = formatdate(mtime + 60, usegmt=True)
    response, body = _request(server, "/dists/kiln/InRelease",
                              headers={"If-Modified-Since": later})  # fmt: skip
    assert response.status == 304
    assert body == b""
    earlier = formatdate(mtime - 60, usegmt=True)
    response, _ = _request(server, "/dists/kiln/InRelease",
                           headers={"If-Modified-Since": earlier})  # fmt: skip
    assert response.status == 200


def test_a_symlink_inside_the_tree_is_followed(
    server: RepositoryHTTPServer, published: PublishedRepository
) -> None:
    response, body = _request(server, "/dists/kiln/inside")
    assert response.status == 200
    assert body == (published.directory / "dists/kiln/InRelease").read_bytes()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/../secret.txt", 403),
        ("/dists/../../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E/secret.txt", 403),
        ("/dists/%2e%2e%2f%2e%2e%2fsecret.txt", 403),
        ("/pool/..%2f..%2fsecret.txt", 403),
        ("/./dists/kiln/InRelease", 403),
        ("//etc/passwd", 404),  # http.server collapses the leading "//": /etc/passwd (absent)
        ("/escape", 403),
        ("/escape-dir/secret.txt", 403),
        ("/.hidden", 403),
        ("/%2ehidden", 403),
        ("/%252e%252e/secret.txt", 404),  # decoded once: a file named "%2e%2e" (absent)
        ("/", 404),
        ("/dists/", 403),
        ("/dists", 404),
        ("/pool", 404),
        ("/nonexistent", 404),
        ("/dists/kiln/InRelease%00.txt", 400),
        ("/dists\\kiln\\InRelease", 400),
        ("/%ff%fe", 400),
        ("*", 400),
        ("http://evil.invalid/../secret.txt", 400),
    ],
    ids=str,
)
def test_hostile_paths_are_refused(server: RepositoryHTTPServer, path: str, status: int) -> None:
    response, body = _request(server, path)
    assert response.status == status
    assert SECRET not in body
    assert b"not for clients" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(server: RepositoryHTTPServer, method: str) -> None:
    response, _ = _request(server, "/dists/kiln/InRelease", method=method)
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


def test_resolve_request_is_confined_to_the_root(published: PublishedRepository) -> None:
    root = published.directory.resolve()
    assert resolve_request(root, "/dists/kiln/InRelease?x=1") == root / "dists/kiln/InRelease"


def test_a_directory_without_inrelease_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "dists" / "kiln").mkdir(parents=True)
    (tmp_path / "dists" / "kiln" / "Release").write_text("Suite: kiln\n")
    with pytest.raises(InputError, match=r"not a kiln apt repository: no dists/<suite>/InRelease"):
        check_repository(tmp_path)
    with pytest.raises(InputError, match="is not a directory"):
        check_repository(tmp_path / "absent")


def test_a_port_in_use_is_a_clear_error(server: RepositoryHTTPServer) -> None:
    port = server.server_address[1]
    with pytest.raises(InputError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
        bind(server.repository, "127.0.0.1", port)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("192.0.2.1", False),
        ("example.invalid", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_kilns_client_reads_the_served_repository(
    server: RepositoryHTTPServer, published: PublishedRepository, tmp_path: Path
) -> None:
    from kiln.aptrepo import load_kiln_universe
    from kiln.debian.cache import Cache
    from kiln.net import HttpFetcher, RetryPolicy
    from kiln.pipeline.archive import KilnAptRepo

    repo = KilnAptRepo.from_environment(
        {"KILN_REPO": server.url, "KILN_REPO_KEYRING": str(published.keyring)}
    )
    assert repo is not None
    universe, _ = load_kiln_universe(
        repo.url, "amd64", keyring=repo.keyring, cache=Cache(tmp_path / "cache"),
        fetcher=HttpFetcher(retry=RetryPolicy(attempts=1)), now=DATE + timedelta(hours=1),
    )  # fmt: skip
    package = universe.get("hello-kiln")
    assert package is not None
    assert package.version == "1.0+kiln1"


def test_apt_updates_and_downloads_from_the_served_url(
    server: RepositoryHTTPServer, published: PublishedRepository, tmp_path: Path
) -> None:
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/sources.list.d",
                "etc/preferences.d", "etc/apt.conf.d"):  # fmt: skip
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").write_text("")
    (state / "etc" / "sources.list").write_text(
        f"deb [signed-by={published.keyring}] {server.url} kiln main\n"
    )
    options = [
        f"-oDir::Etc={state / 'etc'}", f"-oDir::State={state}",
        f"-oDir::State::Lists={state / 'lists'}", f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}", "-oAPT::Architecture=amd64",
        "-oAcquire::Check-Valid-Until=false", "-oDebug::NoLocking=1",
        "-oAcquire::http::Proxy=DIRECT", "-oAPT::Sandbox::User=root",
    ]  # fmt: skip
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, timeout=120,
                            check=False)  # fmt: skip
    errors = update.stderr.decode()
    assert update.returncode == 0, errors
    assert "NO_PUBKEY" not in errors
    assert "not signed" not in errors
    assert any(p.name.endswith("_InRelease") for p in (state / "lists").iterdir())
    download = subprocess.run(["apt-get", *options, "download", "hello-kiln"], cwd=tmp_path,
                              capture_output=True, timeout=120, check=False)  # fmt: skip
    assert download.returncode == 0, download.stderr.decode()
    (fetched,) = tmp_path.glob("hello-kiln_*.deb")
    deb = next((published.directory / "pool").rglob("*.deb"))
    assert fetched.read_bytes() == deb.read_bytes()


def test_apt_refuses_the_served_repository_with_the_wrong_key(
    server: RepositoryHTTPServer, tmp_path: Path
) -> None:
    other = ensure_signing_key(tmp_path / "other-gnupg")
    ring = tmp_path / "other.gpg"
    ring.write_bytes(subprocess.run(
        ["gpg", "--homedir", str(other.home), "--export", other.fingerprint],
        capture_output=True, check=True, timeout=60,
    ).stdout)  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(other.home), "--kill", "gpg-agent"],
                   check=False, timeout=30)  # fmt: skip
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/sources.list.d",
                "etc/preferences.d", "etc/apt.conf.d"):  # fmt: skip
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").write_text("")
    (state / "etc" / "sources.list").write_text(f"deb [signed-by={ring}] {server.url} kiln main\n")
    options = [
        f"-oDir::Etc={state / 'etc'}", f"-oDir::State={state}",
        f"-oDir::State::Lists={state / 'lists'}", f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}", "-oAPT::Architecture=amd64",
        "-oDebug::NoLocking=1", "-oAcquire::http::Proxy=DIRECT", "-oAPT::Sandbox::User=root",
    ]  # fmt: skip
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, timeout=120,
                            check=False)  # fmt: skip
    assert "NO_PUBKEY" in update.stderr.decode() or "not signed" in update.stderr.decode()


def test_kiln_serve_command_serves_until_interrupted(published: PublishedRepository) -> None:
    import signal
    import sys

    code = "import sys; from kiln.cli.main import main; sys.exit(main())"
    # A suite started as a background job of a non-interactive shell inherits SIGINT
    # ignored, and Python (rightly) keeps ignoring it: the child gets Ctrl-C's default
    # back, as it has in a terminal.
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", str(published.directory), "--port", "0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"serving {published.directory.resolve()} (suites: kiln) at ")
        url = first.rsplit(" at ", 1)[1].strip().rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        assert f"KILN_REPO={url} KILN_REPO_KEYRING={published.keyring}" in process.stdout.readline()
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/dists/kiln/InRelease")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == (published.directory / "dists/kiln/InRelease").read_bytes()
        connection.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_kiln_serve_refuses_a_directory_that_is_not_a_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiln.cli.main import main

    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "not a kiln apt repository" in capsys.readouterr().err
