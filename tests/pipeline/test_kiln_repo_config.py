"""Where kiln's own repository is ($KILN_REPO) and reading it in place (file://)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.net import FetchResult, FileFetcher, HttpStatusError, ResponseTooLargeError, SchemeFetcher
from kiln.pipeline.archive import KEYRING_NAME, KilnAptRepo


def test_no_kiln_repo_configured() -> None:
    assert KilnAptRepo.from_environment({}) is None


def test_a_directory_uses_the_keyring_published_inside_it(tmp_path: Path) -> None:
    repo = KilnAptRepo.from_environment({"KILN_REPO": str(tmp_path)})
    assert repo == KilnAptRepo(tmp_path.resolve().as_uri(), tmp_path.resolve() / KEYRING_NAME)


def test_a_remote_repository_needs_an_explicit_keyring(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="KILN_REPO_KEYRING is not set"):
        KilnAptRepo.from_environment({"KILN_REPO": "https://repo.example.invalid/kiln"})
    keyring = tmp_path / "k.gpg"
    env = {"KILN_REPO": "https://repo.example.invalid/kiln/", "KILN_REPO_KEYRING": str(keyring)}
    assert KilnAptRepo.from_environment(env) == KilnAptRepo(
        "https://repo.example.invalid/kiln", keyring
    )


def test_file_fetcher_reads_bounded_and_reports_missing_as_404(tmp_path: Path) -> None:
    (tmp_path / "InRelease").write_bytes(b"signed")
    fetcher = FileFetcher()
    assert fetcher.fetch((tmp_path / "InRelease").as_uri()).body == b"signed"
    with pytest.raises(HttpStatusError) as missing:
        fetcher.fetch((tmp_path / "Release").as_uri())
    assert missing.value.status == 404
    with pytest.raises(ResponseTooLargeError):
        fetcher.fetch((tmp_path / "InRelease").as_uri(), max_bytes=3)
    with pytest.raises(HttpStatusError, match="only file:///absolute/path"):
        fetcher.fetch("file://otherhost/etc/passwd")


class _Recorder:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def fetch(self, url: str, **_: object) -> FetchResult:
        self.urls.append(url)
        return FetchResult(url, 200, b"http")


def test_scheme_fetcher_sends_only_non_file_urls_to_http(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"disk")
    http = _Recorder()  # stands in for HttpFetcher: no network in this unit test
    fetcher = SchemeFetcher(http)
    assert fetcher.fetch((tmp_path / "x").as_uri()).body == b"disk"
    assert fetcher.fetch("http://127.0.0.1:1/x").body == b"http"
    assert http.urls == ["http://127.0.0.1:1/x"]
