"""Publish under fire: a fault proxy in front of the real docker-registry (issue 13.2).

An image published before ("old") holds the tags; the next build ("new") is published
through a loopback proxy that fails one kind of request (blob HEAD/POST/PATCH/PUT,
manifest HEAD/GET/PUT, tag PUT, referrer-tag PUT, referrers GET) with a 500, a 503, a
reset, a lost answer (the registry did it, the client never hears), a delay or a body
cut short, once or every time. Whatever happens:

- publish succeeds, or fails with a ``KilnError`` of exit code 3 naming the registry;
- every tag names the old image or the new one, and a tag on the new one has all of
  its signatures and attestations (``kiln verify``'s default policy passes) and all of
  its blobs (it pulls, every byte checked);
- a publish that fails before its tags leaves every tag on the old image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import re
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fixtures.debrepo import GpgKey, RepoServer, build_repository, default_mirror_dir
from fixtures.debrepo import standard_packages as fixture_packages
from fixtures.registry import (
    FaultProxy,
    ProxiedRequest,
    ReferrersApiFacade,
    Respond,
    RunningRegistry,
    Upstream,
    registry,
)
from kiln.attest import (
    Attestation,
    EcdsaSigner,
    KeyBundleSigner,
    default_policy,
    fetch_bundles,
    verify_image,
)
from kiln.errors import KilnError, RemoteContentError
from kiln.net import RetryPolicy
from kiln.pipeline.publish import (
    PUBLISHED_TYPES,
    BuildObservation,
    Destination,
    attestations_for,
    publish,
)
from kiln.pipeline.tags import tags_for
from kiln.registry import Digest, ImageIndex, Reference, RegistryClient, pull_layout
from registry.helpers import RecordingSleep, client_for

__all__ = ["registry"]

SPEC = """\
name: demo
distro: debian-13
version-package: python3.13-minimal
packages: [python3.13-minimal, tzdata]
exclude: [openssl]
paths:
  - path: /etc/os-release
    type: file
    content: "ID=debian\\nVERSION_ID=13\\nVERSION_CODENAME=trixie\\n"
"""
CTRF = {"reportFormat": "CTRF", "results": {"tests": []}}
KINDS = (
    "blob-head",
    "blob-post",
    "blob-patch",
    "blob-put",
    "manifest-head",
    "manifest-get",
    "manifest-put",
    "tag-put",
    "referrer-tag-put",
    "referrers-get",
)
READS = ("manifest-get", "referrers-get")  # the GETs with a body publish makes
_REFERRERS_TAG = re.compile(r"sha256-[0-9a-f]{64}")


def kind_of(method: str, target: str) -> str:
    """Which kind of distribution-API request ``method target`` is."""
    path = urlsplit(target).path
    if "/blobs/uploads/" in path:
        return {"POST": "blob-post", "PATCH": "blob-patch", "PUT": "blob-put"}.get(method, "?")
    if "/blobs/" in path:
        return {"HEAD": "blob-head", "GET": "blob-get"}.get(method, "?")
    if "/referrers/" in path:
        return "referrers-get"
    if "/manifests/" in path:
        reference = path.rsplit("/manifests/", 1)[1]
        if method == "PUT":
            if reference.startswith("sha256:"):
                return "manifest-put"
            return "referrer-tag-put" if _REFERRERS_TAG.fullmatch(reference) else "tag-put"
        return {"HEAD": "manifest-head", "GET": "manifest-get"}.get(method, "?")
    return "other"


# -- the proxy -------------------------------------------------------------------------


@dataclass
class Fault:
    """Fail requests of ``kind`` with ``how``: the first one (``once``) or every one."""

    kind: str
    how: str  # 500 | 503 | reset | lost-answer | delay | truncate
    once: bool
    hits: int = 0

    def __str__(self) -> str:
        return f"{self.kind}-{self.how}-{'once' if self.once else 'always'}"

    def applies(self, kind: str) -> bool:
        if kind != self.kind or (self.once and self.hits):
            return False
        self.hits += 1
        return True


class Proxy(FaultProxy):
    """``FaultProxy`` relaying to the registry, with faults it cannot make: a body cut
    short after a full ``Content-Length``, and an answer lost after the registry acted."""

    def __init__(self, upstream: str, fault: Fault) -> None:
        self.fault = fault
        self.seen: list[str] = []  # request kinds, in order
        super().__init__(upstream)

    def __enter__(self) -> Proxy:
        super().__enter__()
        return self

    def _decide(self, kind: str) -> str | None:
        with self._lock:
            self.seen.append(kind)
            return self.fault.how if self.fault.applies(kind) else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                how = proxy._decide(kind_of(self.command, self.path))
                if how in {"500", "503"}:
                    error = b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}'
                    self.send_response(int(how or 0))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                if how == "reset":
                    self._hang_up()
                    return
                if how == "delay":
                    time.sleep(0.2)
                answer = proxy._forward(
                    ProxiedRequest(self.command, self.path, dict(self.headers.items()), body)
                )
                if how == "lost-answer":
                    self._hang_up()
                    return
                data = answer.body
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                answered_length = answer.headers.get("Content-Length", "0")
                self.send_header(
                    "Content-Length",
                    answered_length if self.command == "HEAD" else str(len(data)),
                )
                self.end_headers()
                if self.command == "HEAD":
                    return
                if how == "truncate" and data:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._hang_up()
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        return Handler


# -- two builds of one spec --------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    seen: BuildObservation
    attestations: tuple[Attestation, ...]

    @property
    def digest(self) -> Digest:
        return Digest.parse(self.seen.built.index_digest, what="test image")


@dataclass(frozen=True)
class Images:
    old: Image
    new: Image
    signer: EcdsaSigner


def _build(spec: Path, out: Path, epoch: str, signer: KeyBundleSigner) -> Image:
    from kiln.pipeline import ArchiveAccess
    from kiln.pipeline.build import BuildOptions, build_spec
    from kiln.spec import load_spec

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", epoch)
        (built,) = build_spec(
            load_spec(spec),
            ArchiveAccess.from_environment(),
            BuildOptions(output=out, variants=("runtime",)),
        )
    now = dt.datetime.now(dt.UTC)
    seen = BuildObservation(
        loaded=built.loaded,
        lock=built.lock,
        variant=built.variant,
        built=built.image,
        started_on=now,
        finished_on=now,
        test_reports={image.arch: CTRF for image in built.image.images},
        options={},
    )
    return Image(seen, attestations_for(seen, signer))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, debrepo_key: GpgKey) -> Images:
    root = tmp_path_factory.mktemp("publish-faults")
    build_repository(root / "repo", fixture_packages(), key=debrepo_key, valid_until=None)
    signer = EcdsaSigner.generate()
    with RepoServer(root / "repo") as server, pytest.MonkeyPatch.context() as patch:
        config = root / "config.yaml"
        config.write_text(
            "mirrors:\n"
            f"  debian: {server.url}/{default_mirror_dir('trixie')}\n"
            f"  debian-security: {server.url}/{default_mirror_dir('trixie-security')}\n"
        )
        patch.setenv("KILN_CONFIG", str(config))
        patch.setenv("KILN_KEYRING", str(debrepo_key.keyring))
        patch.setenv("KILN_CACHE", str(root / "cache"))
        spec = root / "images" / "demo.yaml"
        spec.parent.mkdir()
        spec.write_text(SPEC)
        bundle_signer = KeyBundleSigner(signer)
        old = _build(spec, root / "out-old", "1767225600", bundle_signer)
        new = _build(spec, root / "out-new", "1767312000", bundle_signer)
    assert old.digest != new.digest
    return Images(old, new, signer)


# -- the campaign --------------------------------------------------------------------------

WRITES = ("blob-post", "blob-patch", "blob-put", "manifest-put", "tag-put", "referrer-tag-put")
CASES = [
    # once: a transient fault is retried and the publish succeeds
    *(Fault(kind, "500", once=True) for kind in KINDS),
    *(Fault(kind, "reset", once=True) for kind in KINDS),
    *(Fault(kind, "lost-answer", once=True) for kind in WRITES),  # done, but unheard
    *(Fault(kind, "delay", once=True) for kind in ("blob-put", "manifest-get", "tag-put")),
    *(Fault(kind, "truncate", once=True) for kind in READS),
    # always: the publish may fail, but never leaves a tag without its evidence
    *(Fault(kind, "503", once=False) for kind in KINDS),
    *(Fault(kind, "reset", once=False) for kind in KINDS),
    *(Fault(kind, "lost-answer", once=False) for kind in WRITES),
    *(Fault(kind, "truncate", once=False) for kind in READS),
]
_repositories = itertools.count()


def _client(host: str) -> RegistryClient:
    # small chunks so that blobs go up in PATCHes too; no real sleeping between retries
    return client_for(
        host, sleep=RecordingSleep(), retry=RetryPolicy(), chunk_threshold=512, chunk_size=1024
    )


@pytest.mark.parametrize("fault", CASES, ids=str)
def test_publish_never_moves_a_tag_to_an_image_without_its_evidence(
    images: Images, registry: RunningRegistry, tmp_path: Path, fault: Fault
) -> None:
    kind, how = fault.kind, fault.how
    destination = Destination(registry.host, f"faults{next(_repositories)}")
    repository = destination.repository("demo")
    tags = tags_for(images.new.seen.built.tag, "runtime")
    with _client(registry.host) as direct:
        if not fault.once:  # tags name an earlier image, which a failure must leave there
            publish(
                images.old.seen, images.old.attestations, client=direct, destination=destination
            )
            assert {t: _tagged(direct, repository, t) for t in tags} == dict.fromkeys(
                tags, images.old.digest
            )

        failure: KilnError | None = None
        with Proxy(registry.host, fault) as proxy, _client(proxy.host) as faulty:
            new_destination = dataclasses.replace(destination, registry=proxy.host)
            try:
                publish(
                    images.new.seen,
                    images.new.attestations,
                    client=faulty,
                    destination=new_destination,
                )
            except KilnError as exc:
                failure = exc
        assert fault.hits, f"no {kind} request was made: {sorted(set(proxy.seen))}"

        if fault.once:
            assert failure is None, f"a single {how} on {kind} is retried: {failure}"

        where = {t: _tagged(direct, repository, t) for t in tags}
        assert set(where.values()) <= {images.old.digest, images.new.digest}, where
        if failure is None:
            assert set(where.values()) == {images.new.digest}, where
        elif kind != "tag-put":
            # failed before its tags: every tag still names the old image
            assert set(where.values()) == {images.old.digest}, where
        if images.new.digest in where.values():
            _check_complete(direct, repository, images.new.digest, images.signer, tmp_path)
        if not fault.once:
            _check_complete(direct, repository, images.old.digest, images.signer, tmp_path)
    if failure is not None:  # a clear message: which registry, which request, which tags
        report = failure.diagnostics()
        assert failure.exit_code == 3, report
        assert f"registry {proxy.host}" in report, report
        assert "no tag was moved" in report or "tags moved to" in report, report


def _tagged(client: RegistryClient, repository: str, tag: str) -> Digest:
    return client.get_manifest(repository, tag).digest


def _check_complete(
    client: RegistryClient, repository: str, digest: Digest, signer: EcdsaSigner, tmp: Path
) -> None:
    """All blobs pull (verified) and the index and each platform manifest verify."""
    reference = Reference(client.registry, repository, digest=digest)
    pull_layout(client, reference, tmp / f"pulled-{digest.encoded[:12]}")
    index = client.get_manifest(repository, digest).parsed
    assert isinstance(index, ImageIndex)
    policy = default_policy(required=PUBLISHED_TYPES)
    for subject in (digest, *(m.digest for m in index.manifests)):
        bundles = fetch_bundles(client, repository, subject)
        verify_image(bundles, str(subject), signer.verifier(), policy)


def test_publish_to_a_registry_with_the_referrers_api(
    images: Images, registry: RunningRegistry
) -> None:
    facade = ReferrersApiFacade()
    with (
        FaultProxy(
            registry.host, request_hook=facade.request_hook, response_hook=facade.response_hook
        ) as proxy,
        _client(proxy.host) as client,
    ):
        destination = Destination(proxy.host, f"api{next(_repositories)}")
        published = publish(
            images.new.seen, images.new.attestations, client=client, destination=destination
        )
        repository = destination.repository("demo")
        assert published.tags == tags_for(images.new.seen.built.tag, "runtime")
        assert facade.api_calls >= 3  # the read-back listed each subject through the API
    # the registry indexed the referrers itself: no referrers tag was written
    assert sorted(registry.tags(repository)) == sorted(published.tags)


def test_a_registry_that_loses_a_referrer_gets_no_tag(
    images: Images, registry: RunningRegistry
) -> None:
    """It accepted the artifact (201 with OCI-Subject) but does not list it afterwards."""
    facade = ReferrersApiFacade()
    lost: list[str] = []

    def forget_one(request: ProxiedRequest, answer: Upstream) -> None:
        facade.response_hook(request, answer)
        for entries in facade.referrers.values():
            if entries and not lost:
                lost.append(entries.pop()["digest"])

    with (
        FaultProxy(
            registry.host, request_hook=facade.request_hook, response_hook=forget_one
        ) as proxy,
        _client(proxy.host) as client,
    ):
        destination = Destination(proxy.host, f"lossy{next(_repositories)}")
        with pytest.raises(RemoteContentError) as caught:
            publish(
                images.new.seen, images.new.attestations, client=client, destination=destination
            )
    report = caught.value.diagnostics()
    assert "are not listed after attaching them" in report
    assert lost[0] in report
    assert "no tag was moved" in report
    assert registry.tags(destination.repository("demo")) == []


def test_a_registry_that_loses_a_blob_gets_no_tag(
    images: Images, registry: RunningRegistry
) -> None:
    """It stored the layer (the manifest PUT passed) but says it does not have it."""
    layer = images.new.seen.built.images[0].layers[-1].digest

    def blob_unknown(request: ProxiedRequest) -> Respond | None:
        if request.method == "HEAD" and request.path.endswith(f"/blobs/{layer}"):
            return Respond(404)
        return None

    with (
        FaultProxy(registry.host, request_hook=blob_unknown) as proxy,
        _client(proxy.host) as client,
    ):
        destination = Destination(proxy.host, f"lostblob{next(_repositories)}")
        with pytest.raises(RemoteContentError) as caught:
            publish(
                images.new.seen, images.new.attestations, client=client, destination=destination
            )
    report = caught.value.diagnostics()
    assert f"blob {layer} of manifest" in report
    assert "is missing after the push" in report
    assert "no tag was moved" in report
    assert registry.tags(destination.repository("demo")) == []
