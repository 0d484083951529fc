"""Verification policy: what must hold of an image's signed attestations (pure).

Evidence is built once (``check_bundles``: every bundle parsed and its DSSE signature
checked against the verifier's key); policies only read it, so they compose like
sigstore-python's verification policies: ``AllOf`` needs every policy, ``AnyOf`` one,
and ``UnsafeNoOp`` accepts anything and warns that it did.

Each failure names what was found, so the four classic attacks read differently:
an unsigned image, a signature by another key ("wrong key"), a valid signature over
another digest, and provenance whose subjects are another image.
See https://github.com/sigstore/sigstore-python/blob/main/sigstore/verify/policy.py
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kiln.attest.bundle import parse_bundle
from kiln.attest.dsse import envelope_verifies
from kiln.attest.keys import Verifier
from kiln.attest.predicates import IMAGE_SIGNATURE, PROVENANCE_V1, predicate_name
from kiln.attest.statement import Statement
from kiln.errors import RemoteContentError


@dataclass(frozen=True)
class RawBundle:
    """Bundle bytes as found (a referrer, a file), or why they could not be read."""

    source: str
    data: bytes | None = None
    problem: str | None = None


@dataclass(frozen=True)
class CheckedBundle:
    """One bundle after parsing and checking its signature against the given key."""

    source: str
    statement: Statement | None = None
    signed: bool = False  # a DSSE signature verifies with the verifier's key
    key_hint: str | None = None
    keyless: bool = False  # carries a certificate (Fulcio) instead of a key hint
    problem: str | None = None  # unreadable: why

    @property
    def predicate_type(self) -> str | None:
        return self.statement.predicate_type if self.statement else None

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement.predicate if self.statement else {}

    def covers(self, digest: str) -> bool:
        return self.statement is not None and digest in self.statement.subject_digests()

    def describe_signer(self) -> str:
        if self.keyless:
            return "a keyless (certificate) signature"
        return f"key {self.key_hint}" if self.key_hint else "an unnamed key"


def check_bundle(raw: RawBundle, verifier: Verifier) -> CheckedBundle:
    """Parse one bundle and check its signature; malformed content becomes ``problem``."""
    if raw.data is None:
        return CheckedBundle(raw.source, problem=raw.problem or "no content")
    try:
        bundle = parse_bundle(raw.data, where=raw.source)
        statement = bundle.statement(where=raw.source)  # refuses bundles without an envelope
        signed = bundle.envelope is not None and envelope_verifies(bundle.envelope, verifier)
    except RemoteContentError as exc:
        return CheckedBundle(raw.source, problem=str(exc))
    return CheckedBundle(
        raw.source,
        statement=statement,
        signed=signed,
        key_hint=bundle.public_key_hint,
        keyless=bundle.certificate_der is not None,
    )


def check_bundles(raws: Iterable[RawBundle], verifier: Verifier) -> tuple[CheckedBundle, ...]:
    return tuple(check_bundle(raw, verifier) for raw in raws)


@dataclass(frozen=True)
class Evidence:
    """What a policy judges: the image digest, the trusted key and the checked bundles."""

    image_digest: str
    key_id: str
    bundles: tuple[CheckedBundle, ...]

    def of_type(self, predicate_type: str) -> tuple[CheckedBundle, ...]:
        return tuple(b for b in self.bundles if b.predicate_type == predicate_type)

    def trusted(self, predicate_type: str) -> tuple[CheckedBundle, ...]:
        """Bundles of this type, signed by the key, about this image."""
        return tuple(
            b for b in self.of_type(predicate_type) if b.signed and b.covers(self.image_digest)
        )

    def unreadable(self) -> tuple[CheckedBundle, ...]:
        return tuple(b for b in self.bundles if b.problem is not None)


@dataclass(frozen=True)
class Outcome:
    """A policy's verdict: failures (empty means it holds), passes and warnings."""

    failures: tuple[str, ...] = ()
    passes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @staticmethod
    def merge(outcomes: Iterable[Outcome]) -> Outcome:
        items = list(outcomes)
        return Outcome(
            failures=tuple(f for o in items for f in o.failures),
            passes=tuple(p for o in items for p in o.passes),
            warnings=tuple(w for o in items for w in o.warnings),
        )


def _fail(text: str) -> Outcome:
    return Outcome(failures=(text,))


def _pass(text: str) -> Outcome:
    return Outcome(passes=(text,))


class Policy(Protocol):
    """One rule over the evidence."""

    def check(self, evidence: Evidence) -> Outcome: ...


def _subjects(bundle: CheckedBundle) -> str:
    if bundle.statement is None:
        return "nothing"
    return ", ".join(sorted(bundle.statement.subject_digests()))


def _judge_type(evidence: Evidence, predicate_type: str, *, absent: str, other: str) -> Outcome:
    """Present, signed by the key, about this image: the shared core of every rule."""
    name = predicate_name(predicate_type)
    found = evidence.of_type(predicate_type)
    if evidence.trusted(predicate_type):
        return _pass(f"{name}: signed by key {evidence.key_id}, subject {evidence.image_digest}")
    if not found:
        detail = ""
        if evidence.unreadable():
            detail = f" ({len(evidence.unreadable())} attached bundle(s) could not be read)"
        return _fail(f"{absent}{detail}")
    signed = [b for b in found if b.signed]
    if signed:
        return _fail(
            f"{other}: the {name} in {signed[0].source} covers {_subjects(signed[0])}, "
            f"not {evidence.image_digest}"
        )
    first = found[0]
    return _fail(
        f"wrong key: the {name} in {first.source} is signed with {first.describe_signer()}, "
        f"and does not verify with the given key {evidence.key_id}"
    )


@dataclass(frozen=True)
class ImageSignature:
    """The image digest is signed (an image-signature statement) by the given key."""

    def check(self, evidence: Evidence) -> Outcome:
        return _judge_type(
            evidence,
            IMAGE_SIGNATURE,
            absent=f"unsigned image: no image signature refers to {evidence.image_digest}",
            other="signature over another digest",
        )


@dataclass(frozen=True)
class ProvenanceForImage:
    """Signed SLSA provenance whose subjects include the image digest."""

    def check(self, evidence: Evidence) -> Outcome:
        return _judge_type(
            evidence,
            PROVENANCE_V1,
            absent=f"no SLSA provenance refers to {evidence.image_digest}",
            other="provenance for another image",
        )


@dataclass(frozen=True)
class RequiredAttestations:
    """Each predicate type is present, signed by the key and about this image."""

    predicate_types: tuple[str, ...]

    def check(self, evidence: Evidence) -> Outcome:
        return Outcome.merge(
            _judge_type(
                evidence,
                predicate_type,
                absent=f"missing {predicate_name(predicate_type)} attestation "
                f"({predicate_type}) for {evidence.image_digest}",
                other=f"{predicate_name(predicate_type)} for another image",
            )
            for predicate_type in self.predicate_types
        )


def _builder_ids(evidence: Evidence) -> list[str]:
    ids = []
    for bundle in evidence.trusted(PROVENANCE_V1):
        run = bundle.predicate.get("runDetails")
        builder = run.get("builder") if isinstance(run, dict) else None
        found = builder.get("id") if isinstance(builder, dict) else None
        ids.append(found if isinstance(found, str) else "")
    return ids


@dataclass(frozen=True)
class BuilderIdAllowed:
    """The trusted provenance names an allowed ``runDetails.builder.id``."""

    allowed: frozenset[str]

    def check(self, evidence: Evidence) -> Outcome:
        ids = _builder_ids(evidence)
        if not ids:
            return _fail("builder id: no signed provenance for this image to read it from")
        good = [i for i in ids if i in self.allowed]
        if good:
            return _pass(f"builder id {good[0]} is allowed")
        shown = ", ".join(repr(i) for i in sorted(set(ids)))
        return _fail(
            f"builder id {shown} is not allowed (allowed: {', '.join(sorted(self.allowed))})"
        )


def _finished_on(bundle: CheckedBundle) -> dt.datetime | None:
    run = bundle.predicate.get("runDetails")
    metadata = run.get("metadata") if isinstance(run, dict) else None
    text = metadata.get("finishedOn") if isinstance(metadata, dict) else None
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class MaxAge:
    """The image was built (provenance ``finishedOn``) at most ``max_age`` before ``now``."""

    max_age: dt.timedelta
    now: dt.datetime

    def check(self, evidence: Evidence) -> Outcome:
        times = [t for b in evidence.trusted(PROVENANCE_V1) if (t := _finished_on(b))]
        if not times:
            return _fail("max age: no signed provenance with a valid finishedOn for this image")
        newest = max(times)
        age = self.now - newest
        if age > self.max_age:
            return _fail(
                f"image too old: built {newest.isoformat()}, {age} ago; "
                f"the policy allows {self.max_age}"
            )
        return _pass(f"built {newest.isoformat()}, within {self.max_age}")


@dataclass(frozen=True)
class AllOf:
    """Every policy holds; all failures are reported."""

    policies: tuple[Policy, ...]

    def check(self, evidence: Evidence) -> Outcome:
        if not self.policies:
            return _fail("AllOf: an empty policy list proves nothing")
        return Outcome.merge(p.check(evidence) for p in self.policies)


@dataclass(frozen=True)
class AnyOf:
    """At least one policy holds; if none does, every failure is reported."""

    policies: tuple[Policy, ...]

    def check(self, evidence: Evidence) -> Outcome:
        outcomes = [p.check(evidence) for p in self.policies]
        passing = [o for o in outcomes if o.ok]
        if passing:
            return Outcome.merge(passing)
        merged = Outcome.merge(outcomes)
        return Outcome(
            failures=(f"none of {len(outcomes)} alternatives holds", *merged.failures),
            warnings=merged.warnings,
        )


@dataclass(frozen=True)
class UnsafeNoOp:
    """Accepts anything. For debugging only; it warns every time it is used."""

    def check(self, evidence: Evidence) -> Outcome:
        text = f"UnsafeNoOp policy: {evidence.image_digest} was NOT verified"
        warnings.warn(text, stacklevel=2)
        return Outcome(warnings=(text,))


def default_policy(
    *,
    required: Sequence[str] = (),
    builder_ids: Iterable[str] | None = None,
    max_age: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> AllOf:
    """Image signature + provenance for the image, plus the optional rules asked for."""
    policies: list[Policy] = [ImageSignature(), ProvenanceForImage()]
    extra = tuple(t for t in required if t not in {IMAGE_SIGNATURE, PROVENANCE_V1})
    if extra:
        policies.append(RequiredAttestations(extra))
    if builder_ids is not None:
        policies.append(BuilderIdAllowed(frozenset(builder_ids)))
    if max_age is not None:
        if now is None:
            raise ValueError("a max-age policy needs the current time")
        policies.append(MaxAge(max_age, now))
    return AllOf(tuple(policies))
