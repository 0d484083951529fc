"""The verification policy file (``kiln verify --policy FILE``), YAML or JSON.

    # what an image must prove before it is deployed
    requireAttestations: [spdx, cyclonedx, test-report]   # names or predicate type URIs
    builderIds: [https://kiln.dev/builders/ci/v1]          # allowed runDetails.builder.id
    maxAge: 30d                                             # newest provenance at most this old

The image signature and provenance for the image are always required. Durations are
``<n><unit>`` groups with units s, m, h, d, w (``1w2d``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kiln.attest.policy import AllOf, default_policy
from kiln.attest.predicates import (
    CYCLONEDX_1_6,
    OPENVEX_0_2,
    PROVENANCE_V1,
    SPDX_2_3,
    TEST_REPORT_CTRF,
)
from kiln.errors import InputError

ATTESTATION_NAMES = {
    "provenance": PROVENANCE_V1,
    "spdx": SPDX_2_3,
    "cyclonedx": CYCLONEDX_1_6,
    "vex": OPENVEX_0_2,
    "test-report": TEST_REPORT_CTRF,
}
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MAX_POLICY_BYTES = 1024 * 1024


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``1w2d``: a positive duration, else ``InputError``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InputError(f"duration {text!r} is not like 30d, 12h or 1w2d")
    total = dt.timedelta()
    for number, unit in parts:
        total += dt.timedelta(**{_UNITS[unit]: int(number)})
    if total <= dt.timedelta(0):
        raise InputError(f"duration {text!r} is not positive")
    return total


def attestation_type(name: str) -> str:
    """A predicate type from a short name (``spdx``) or a URI, else ``InputError``."""
    if name in ATTESTATION_NAMES:
        return ATTESTATION_NAMES[name]
    if "://" in name:
        return name
    raise InputError(
        f"attestation {name!r} is neither one of {', '.join(ATTESTATION_NAMES)} nor a URI"
    )


class PolicyFile(BaseModel):
    """The parsed file; ``to_policy`` turns it into composable policies."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    require_attestations: tuple[str, ...] = Field(default=(), alias="requireAttestations")
    builder_ids: tuple[str, ...] | None = Field(default=None, alias="builderIds", min_length=1)
    max_age: str | None = Field(default=None, alias="maxAge")

    def to_policy(self, *, now: dt.datetime) -> AllOf:
        return default_policy(
            required=[attestation_type(n) for n in self.require_attestations],
            builder_ids=self.builder_ids,
            max_age=parse_duration(self.max_age) if self.max_age else None,
            now=now,
        )


def load_policy_file(path: Path) -> PolicyFile:
    """Read and check a policy file, naming the file, line and field on any problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read policy file {path}: {exc.strerror}") from exc
    if len(data) > _MAX_POLICY_BYTES:
        raise InputError(f"policy file {path} is larger than {_MAX_POLICY_BYTES} bytes")
    return parse_policy_file(data, path)


def parse_policy_file(data: bytes, path: Path) -> PolicyFile:
    """Policy file bytes (YAML, or JSON, which is YAML too) as a checked ``PolicyFile``."""
    # ruamel.yaml loads only when a policy file is given: `kiln verify` without one
    # starts about 40 ms sooner
    from kiln.yamldoc import locate, parse_yaml_model  # noqa: PLC0415

    policy, tree = parse_yaml_model(data, path, PolicyFile, what="policy file", error=InputError)
    # refuse unknown names and bad durations now, not at verification time
    for index, name in enumerate(policy.require_attestations):
        try:
            attestation_type(name)
        except InputError as exc:
            where = locate(tree, path, ("requireAttestations", index))
            raise InputError(exc.message, location=where) from exc
    if policy.max_age:
        try:
            parse_duration(policy.max_age)
        except InputError as exc:
            raise InputError(exc.message, location=locate(tree, path, ("maxAge",))) from exc
    return policy
