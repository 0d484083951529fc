"""Attestation tests: keys, a small lock and image digests, and the real registry."""

from __future__ import annotations

import datetime as dt

import pytest

from fixtures.registry import registry
from kiln.attest import EcdsaSigner, ImageDigests, ProvenanceInputs
from kiln.resolve.lockfile import Lock

from .helpers import IMAGE, make_lock

__all__ = ["registry"]


@pytest.fixture(scope="session")
def signer() -> EcdsaSigner:
    return EcdsaSigner.generate()


@pytest.fixture(scope="session")
def other_signer() -> EcdsaSigner:
    return EcdsaSigner.generate()


@pytest.fixture
def lock() -> Lock:
    return make_lock()


@pytest.fixture
def image() -> ImageDigests:
    return IMAGE


@pytest.fixture
def provenance_inputs(lock: Lock, image: ImageDigests) -> ProvenanceInputs:
    started = dt.datetime(2026, 11, 20, 10, 0, 0, tzinfo=dt.UTC)
    return ProvenanceInputs(
        image=image,
        lock=lock,
        variant="runtime",
        spec_path="images/tiny.yaml",
        spec_sha256="5" * 64,
        builder_id="https://kiln.dev/builders/test/v1",
        invocation_id="7c6f1c1e-8a4e-4c1b-9d7e-3c2f0b1a9e11",
        started_on=started,
        finished_on=started + dt.timedelta(seconds=42),
        source_date_epoch=1763600000,
        options={"compression": "gzip"},
    )
