"""The repository client end to end against the signed fixture repository (loopback)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fixtures.debrepo import (
    REPO_DATE,
    REPO_VALID_UNTIL,
    DebRepo,
    GpgKey,
    clearsign,
    release_text,
)
from kiln.debian import Cache, PackageUniverse, RepoSnapshot, fetch_debs, load_snapshot
from kiln.errors import IntegrityError, RemoteContentError, SignatureError, TransportError
from kiln.net import HttpFetcher, RetryPolicy

NOW = REPO_DATE + timedelta(days=1)


def _fetcher(attempts: int = 3) -> HttpFetcher:
    return HttpFetcher(retry=RetryPolicy(attempts=attempts, base_delay=0.0), sleep=lambda _s: None)


def _load(
    repo: DebRepo,
    cache: Cache,
    *,
    archs: tuple[str, ...] = ("amd64", "arm64"),
    keyring: Path | None = None,
    now: datetime = NOW,
    max_age: float = 0.0,
    fetcher: HttpFetcher | None = None,
) -> RepoSnapshot:
    return load_snapshot(
        repo.distro,
        archs,
        cache=cache,
        fetcher=fetcher or _fetcher(),
        mirrors=repo.mirrors,
        keyring=keyring or repo.keyring,
        now=now,
        max_age=max_age,
    )


def _resign(repo: DebRepo, suite: str, release: bytes, tmp_path: Path) -> bytes:
    return clearsign(repo.key, release, workdir=tmp_path)


# -- the good path -------------------------------------------------------------------


def test_good_signature_loads_merged_snapshot(debrepo: DebRepo, tmp_path: Path) -> None:
    snapshot = _load(debrepo, Cache(tmp_path))
    assert [r.suite for r in snapshot.releases] == ["trixie", "trixie-updates", "trixie-security"]
    assert snapshot.release("trixie").codename == "trixie"
    assert snapshot.release("trixie").date == "Thu, 15 Jan 2026 12:00:00 UTC"
    inrelease = debrepo.file("trixie", "InRelease")
    assert snapshot.release("trixie").inrelease_sha256 == hashlib.sha256(inrelease).hexdigest()
    assert snapshot.base_urls["trixie-security"].endswith("/debian-security")
    for arch in ("amd64", "arm64"):
        universe = snapshot.universe(arch)
        assert isinstance(universe, PackageUniverse)
        assert universe.arch == arch
        ssl = universe.get("libssl3t64")
        assert ssl is not None
        # security wins over main when newer ...
        assert (ssl.version, ssl.suite, ssl.architecture) == (
            "3.5.1-1+deb13u1",
            "trixie-security",
            arch,
        )
        assert ssl.source == "openssl"
        # ... updates too, and Architecture: all packages are in both arch views ...
        tz = universe.get("tzdata")
        assert tz is not None
        assert (tz.version, tz.suite, tz.architecture) == (
            "2025c-0+deb13u1",
            "trixie-updates",
            "all",
        )
        # ... but an older version in security does not win.
        ca = universe.get("ca-certificates")
        assert ca is not None
        assert (ca.version, ca.suite) == ("20250419", "trixie")
        assert [p.name for p in universe.providers("awk")] == ["mawk"]
        assert [p.name for p in universe.providers("debconf-2.0")] == ["debconf"]
        assert [p.version for p in universe.providers("libssl3")] == ["3.5.1-1+deb13u1"]
        assert universe.get("no-such-package") is None
        assert universe.providers("no-such-package") == ()
        assert "python3.13-minimal" in set(universe.names())
    with pytest.raises(KeyError, match="s390x"):
        snapshot.universe("s390x")


def test_naive_clock_and_missing_arch_are_programming_errors(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _load(debrepo, Cache(tmp_path), now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="at least one architecture"):
        _load(debrepo, Cache(tmp_path), archs=())
    with pytest.raises(ValueError, match="no mirror URL for suite 'trixie-updates'"):
        load_snapshot(
            debrepo.distro, ["amd64"], cache=Cache(tmp_path), fetcher=_fetcher(),
            mirrors={"trixie": debrepo.mirrors["trixie"]}, keyring=debrepo.keyring, now=NOW,
        )  # fmt: skip


def test_detached_signature_fallback_when_inrelease_is_missing(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    for suite in debrepo.distro.suites:
        debrepo.server.drop(debrepo.url_path(suite, "InRelease"))
    snapshot = _load(debrepo, Cache(tmp_path), archs=("amd64",))
    paths = debrepo.server.paths()
    assert debrepo.url_path("trixie", "Release") in paths
    assert debrepo.url_path("trixie", "Release.gpg") in paths
    release = debrepo.file("trixie", "Release")
    assert snapshot.release("trixie").inrelease_sha256 == hashlib.sha256(release).hexdigest()


# -- refused signatures: each with its own error -------------------------------------


def test_bad_signature_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    signed = debrepo.file("trixie", "InRelease")
    tampered = signed.replace(b"Components: main", b"Components: mainx", 1)
    assert tampered != signed
    debrepo.server.override(debrepo.url_path("trixie", "InRelease"), tampered)
    with pytest.raises(SignatureError, match="BAD signature"):
        _load(debrepo, Cache(tmp_path))


def test_unsigned_inrelease_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    debrepo.server.override(
        debrepo.url_path("trixie", "InRelease"), debrepo.file("trixie", "Release")
    )
    with pytest.raises(SignatureError, match="not signed"):
        _load(debrepo, Cache(tmp_path))


def test_unsigned_repository_without_release_gpg_is_refused(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    debrepo.server.drop(debrepo.url_path("trixie", "InRelease"))
    debrepo.server.drop(debrepo.url_path("trixie", "Release.gpg"))
    with pytest.raises(SignatureError, match=r"no InRelease and no Release\.gpg"):
        _load(debrepo, Cache(tmp_path))


def test_signature_by_key_not_in_keyring_is_refused(
    debrepo: DebRepo, debrepo_stranger_key: GpgKey, tmp_path: Path
) -> None:
    with pytest.raises(SignatureError, match="not in the keyring") as caught:
        _load(debrepo, Cache(tmp_path), keyring=debrepo_stranger_key.keyring)
    assert debrepo.key.fingerprint[-16:] in str(caught.value)


def test_text_outside_the_signed_part_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    signed = debrepo.file("trixie", "InRelease")
    path = debrepo.url_path("trixie", "InRelease")
    debrepo.server.override(path, b"Codename: sid\n\n" + signed)
    with pytest.raises(SignatureError, match="unsigned text before"):
        _load(debrepo, Cache(tmp_path))
    debrepo.server.override(path, signed + b"\nSHA256:\n 00 1 main/binary-amd64/Packages.xz\n")
    with pytest.raises(SignatureError, match="unsigned text after"):
        _load(debrepo, Cache(tmp_path))


def test_expired_valid_until_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    late = REPO_VALID_UNTIL + timedelta(hours=1)
    with pytest.raises(RemoteContentError, match="expired at 2026-01-22") as caught:
        _load(debrepo, Cache(tmp_path), now=late)
    assert not isinstance(caught.value, SignatureError)


def test_release_of_another_suite_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    debrepo.server.override(
        debrepo.url_path("trixie", "InRelease"), debrepo.file("trixie-updates", "InRelease")
    )
    with pytest.raises(RemoteContentError, match="asked for suite 'trixie'"):
        _load(debrepo, Cache(tmp_path))


def test_rollback_to_an_older_release_is_refused(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    _load(debrepo, cache, archs=("amd64",))
    older = release_text(
        suite="stable",
        codename="trixie",
        date=REPO_DATE - timedelta(days=30),
        valid_until=None,
        archs=("amd64",),
        by_hash=True,
        files={},
    )
    debrepo.server.override(
        debrepo.url_path("trixie", "InRelease"), _resign(debrepo, "trixie", older, tmp_path)
    )
    with pytest.raises(RemoteContentError, match="rollback"):
        _load(debrepo, cache, archs=("amd64",))


# -- index integrity -----------------------------------------------------------------


def test_packages_hash_mismatch_is_refused_without_retry(debrepo: DebRepo, tmp_path: Path) -> None:
    listed = debrepo.file("trixie", "main/binary-amd64/Packages.xz")
    by_hash = debrepo.url_path(
        "trixie", f"main/binary-amd64/by-hash/SHA256/{hashlib.sha256(listed).hexdigest()}"
    )
    forged = debrepo.file("trixie-security", "main/binary-amd64/Packages.xz")
    debrepo.server.override(by_hash, forged + b"\0" * (len(listed) - len(forged)))
    with pytest.raises(IntegrityError, match=r"sha256 .* does not match") as caught:
        _load(debrepo, Cache(tmp_path), archs=("amd64",))
    assert "main/binary-amd64" in str(caught.value)
    assert debrepo.server.paths().count(by_hash) == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "size"),
        (lambda b: b + b"\0", "more than the .* bytes promised"),
    ],
)
def test_packages_size_mismatch_is_refused(
    debrepo: DebRepo, tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    listed = debrepo.file("trixie", "main/binary-arm64/Packages.xz")
    by_hash = debrepo.url_path(
        "trixie", f"main/binary-arm64/by-hash/SHA256/{hashlib.sha256(listed).hexdigest()}"
    )
    debrepo.server.override(by_hash, damage(listed))
    with pytest.raises(IntegrityError, match=message):
        _load(debrepo, Cache(tmp_path), archs=("arm64",))
    assert debrepo.server.paths().count(by_hash) == 1


def test_packages_taken_by_hash_and_canonical_name_as_fallback(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    _load(debrepo, Cache(tmp_path / "a"), archs=("amd64",))
    assert any("/by-hash/SHA256/" in p for p in debrepo.server.paths())
    assert debrepo.url_path("trixie", "main/binary-amd64/Packages.xz") not in debrepo.server.paths()
    listed = debrepo.file("trixie", "main/binary-amd64/Packages.xz")
    debrepo.server.drop(
        debrepo.url_path(
            "trixie", f"main/binary-amd64/by-hash/SHA256/{hashlib.sha256(listed).hexdigest()}"
        )
    )
    snapshot = _load(debrepo, Cache(tmp_path / "b"), archs=("amd64",))
    assert snapshot.universe("amd64").get("libc6") is not None
    assert debrepo.url_path("trixie", "main/binary-amd64/Packages.xz") in debrepo.server.paths()


def test_server_errors_are_retried_then_succeed(debrepo: DebRepo, tmp_path: Path) -> None:
    path = debrepo.url_path("trixie", "InRelease")
    debrepo.server.fail(path, times=2, status=500)
    snapshot = _load(debrepo, Cache(tmp_path), archs=("amd64",), fetcher=_fetcher(attempts=3))
    assert snapshot.release("trixie").suite == "trixie"
    statuses = [r.status for r in debrepo.server.requests if r.path == path]
    assert statuses == [500, 500, 200]


def test_persistent_server_errors_become_a_transport_error(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    path = debrepo.url_path("trixie-updates", "InRelease")
    debrepo.server.fail(path, times=10, status=503)
    with pytest.raises(TransportError, match="after 2 attempts"):
        _load(debrepo, Cache(tmp_path), archs=("amd64",), fetcher=_fetcher(attempts=2))


# -- the cache -----------------------------------------------------------------------


def test_second_load_only_revalidates_inrelease(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    first = _load(debrepo, cache)
    debrepo.server.requests.clear()
    second = _load(debrepo, cache)
    requests = debrepo.server.requests
    assert sorted(r.path for r in requests) == sorted(
        debrepo.url_path(s, "InRelease") for s in debrepo.distro.suites
    )
    assert all(r.if_none_match and r.status == 304 for r in requests)
    assert second.releases == first.releases
    assert second.universe("arm64").get("libssl3t64") == first.universe("arm64").get("libssl3t64")


def test_cached_verification_is_reused_until_the_keyring_changes(
    debrepo: DebRepo,
    debrepo_stranger_key: GpgKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kiln.debian.release as release_module

    cache = Cache(tmp_path)
    _load(debrepo, cache)
    calls: list[object] = []
    real = release_module._run_gpgv

    def counting(args: list[str], *, keyring: Path, home: str, source: str) -> tuple[str, ...]:
        calls.append(args)
        return real(args, keyring=keyring, home=home, source=source)

    monkeypatch.setattr(release_module, "_run_gpgv", counting)
    _load(debrepo, cache)
    assert calls == []  # bytes already verified against this keyring: no gpgv run
    # Also when the mirror sends no validators and the same bytes come again in full.
    debrepo.server.send_validators = False
    debrepo.server.requests.clear()
    _load(debrepo, cache)
    assert calls == []
    assert {r.status for r in debrepo.server.requests} == {200}
    assert len(debrepo.server.requests) == 3
    with pytest.raises(SignatureError, match="not in the keyring"):
        _load(debrepo, cache, keyring=debrepo_stranger_key.keyring)
    assert calls


def test_recent_cache_makes_no_requests_within_max_age(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    _load(debrepo, cache)
    debrepo.server.requests.clear()
    snapshot = _load(debrepo, cache, now=NOW + timedelta(minutes=5), max_age=3600)
    assert debrepo.server.requests == []
    assert snapshot.universe("amd64").get("tzdata") is not None
    # Valid-Until is still enforced on a cached Release:
    with pytest.raises(RemoteContentError, match="expired"):
        _load(debrepo, cache, now=REPO_VALID_UNTIL + timedelta(days=1), max_age=10**9)


def test_changed_inrelease_is_fetched_again(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    _load(debrepo, cache, archs=("amd64",))
    newer = debrepo.file("trixie", "Release").replace(
        b"Date: Thu, 15 Jan 2026 12:00:00 UTC", b"Date: Fri, 16 Jan 2026 12:00:00 UTC"
    )
    debrepo.server.override(
        debrepo.url_path("trixie", "InRelease"), _resign(debrepo, "trixie", newer, tmp_path)
    )
    snapshot = _load(debrepo, cache, archs=("amd64",))
    assert snapshot.release("trixie").date == "Fri, 16 Jan 2026 12:00:00 UTC"


def test_corrupted_cache_entries_are_detected_and_refetched(
    debrepo: DebRepo, tmp_path: Path
) -> None:
    cache = Cache(tmp_path)
    first = _load(debrepo, cache, archs=("amd64",))
    # Corrupt every derived form and every blob (InRelease copies and Packages.xz).
    for path in [*(tmp_path / "derived").iterdir(), *(tmp_path / "sha256").iterdir()]:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    debrepo.server.requests.clear()
    second = _load(debrepo, cache, archs=("amd64",))
    assert second.universe("amd64").get("libssl3t64") == first.universe("amd64").get("libssl3t64")
    paths = debrepo.server.paths()
    assert any("/by-hash/SHA256/" in p for p in paths)  # Packages.xz fetched again
    inrelease = [r for r in debrepo.server.requests if r.path.endswith("/InRelease")]
    assert all(r.status == 200 and r.if_none_match is None for r in inrelease)


# -- .deb downloads ------------------------------------------------------------------


def test_fetch_debs_verifies_and_caches(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    snapshot = _load(debrepo, cache, archs=("arm64",))
    universe = snapshot.universe("arm64")
    wanted = [universe.get(n) for n in ("python3.13-minimal", "libssl3t64", "tzdata")]
    packages = [p for p in wanted if p is not None]
    paths = fetch_debs(packages, base_urls=snapshot.base_urls, cache=cache, fetcher=_fetcher())
    assert [p.name for p in paths] == [p.sha256 for p in packages]
    for path, package in zip(paths, packages, strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == package.sha256
    assert any(p.startswith("/debian-security/pool/") for p in debrepo.server.paths())
    debrepo.server.requests.clear()
    assert (
        fetch_debs(packages, base_urls=snapshot.base_urls, cache=cache, fetcher=_fetcher()) == paths
    )
    assert debrepo.server.requests == []
    # A corrupted cached .deb is noticed and downloaded again.
    paths[0].write_bytes(b"garbage")
    again = fetch_debs(packages, base_urls=snapshot.base_urls, cache=cache, fetcher=_fetcher())
    assert hashlib.sha256(again[0].read_bytes()).hexdigest() == packages[0].sha256
    assert len(debrepo.server.requests) == 1


def test_deb_sha256_mismatch_is_refused_and_never_visible(debrepo: DebRepo, tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    snapshot = _load(debrepo, cache, archs=("amd64",))
    package = snapshot.universe("amd64").get("python3.13-minimal")
    assert package is not None
    real = (debrepo.root / "debian" / package.filename).read_bytes()
    forged = bytearray(real)
    forged[-1] ^= 0xFF
    debrepo.server.override(f"/debian/{package.filename}", bytes(forged))
    with pytest.raises(IntegrityError, match=r"python3\.13-minimal") as caught:
        fetch_debs([package], base_urls=snapshot.base_urls, cache=cache, fetcher=_fetcher())
    assert "does not match" in str(caught.value)
    assert not cache.blob_path(package.sha256).exists()
    assert not [p for p in (tmp_path / "sha256").iterdir() if p.name.endswith(".tmp")]
    assert debrepo.server.paths().count(f"/debian/{package.filename}") == 1
    debrepo.server.override(f"/debian/{package.filename}", real + b"trailing")
    with pytest.raises(IntegrityError, match="more than the"):
        fetch_debs([package], base_urls=snapshot.base_urls, cache=cache, fetcher=_fetcher())
    assert not cache.blob_path(package.sha256).exists()


# -- the real archive ----------------------------------------------------------------


@pytest.mark.network
def test_real_trixie_snapshot(tmp_path: Path) -> None:
    import lzma
    import time
    from datetime import UTC, datetime

    from fixtures.debrepo import assert_agrees_with_python_debian
    from kiln.debian import compare_versions, discover_mirrors, get_distro, parse_packages
    from kiln.debian.release import verify_release

    distro = get_distro("debian-13")
    mirrors = discover_mirrors()
    cache = Cache(tmp_path / "cache")
    fetcher = HttpFetcher()
    now = datetime.now(UTC)
    archs = ("amd64", "arm64")
    timings: dict[str, float] = {}
    for label, max_age in (("cold", 0.0), ("warm", 0.0), ("warm, no revalidation", 3600.0)):
        start = time.perf_counter()
        snapshot = load_snapshot(
            distro, archs, cache=cache, fetcher=fetcher, mirrors=mirrors, now=now, max_age=max_age
        )
        timings[label] = time.perf_counter() - start
    print(
        "\nload_snapshot trixie amd64+arm64: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    )

    assert [r.suite for r in snapshot.releases] == list(distro.suites)
    # The main suite's own index, to check the merge against.
    main_url = mirrors.suite_urls(distro)["trixie"]
    inrelease = fetcher.fetch(f"{main_url}/dists/trixie/InRelease").body
    main_release = verify_release(
        suite="trixie", base_url=main_url, keyring=Path(distro.keyring), now=now,
        inrelease=inrelease, source="InRelease",
    ).release  # fmt: skip
    for arch in archs:
        universe = snapshot.universe(arch)
        python = universe.get("python3.13-minimal")
        assert python is not None
        assert python.version.startswith("3.13.")
        assert python.architecture == arch
        assert python.source == "python3.13"
        libc = universe.get("libc6")
        assert libc is not None
        assert (libc.source, libc.multi_arch) == ("glibc", "same")
        assert "mawk" in [p.name for p in universe.providers("awk")]
        tzdata = universe.get("tzdata")
        assert tzdata is not None
        assert tzdata.architecture == "all"

        entry = main_release.entry(f"main/binary-{arch}/Packages.xz", source="Release")
        blob = cache.read_blob(entry.sha256)
        assert blob is not None
        plain = lzma.decompress(blob)
        main = parse_packages(plain, arch=arch, source="Packages")
        # Our parser reads real stanzas exactly as python-debian does (a slice of them).
        cut = plain.index(b"\n\n", 3_000_000) + 2
        assert assert_agrees_with_python_debian(plain[:cut], arch=arch) > 1000
        from_security = [
            p
            for p in map(universe.get, list(universe.names()))
            if p and p.suite == "trixie-security"
        ]
        assert from_security, "expected trixie-security candidates"
        for package in from_security:
            record = main.record(package.name)
            if record is not None:
                assert compare_versions(package.version, record[1]) > 0
