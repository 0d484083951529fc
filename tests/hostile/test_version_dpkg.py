"""kiln accepts as a Debian version only what ``dpkg --validate-version`` accepts (issue 13, 12).

python-debian took ``c6`` and a 20-digit epoch, which dpkg refuses. The property test
generates version-like strings with hypothesis and asks the real dpkg about a batch at a
time (one shell loop per batch: spawning dpkg from Python per string is slow).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.debian.version import parse_version
from kiln.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")

# Prints dpkg's exit status for each NUL-terminated version on stdin (0: valid).
_VALIDATE_LOOP = r"""
while IFS= read -r -d '' v; do
  dpkg --validate-version -- "$v" >/dev/null 2>&1; echo $?
done
"""


def dpkg_accepts(versions: Sequence[str]) -> list[bool]:
    data = "".join(v + "\0" for v in versions).encode()
    done = subprocess.run(
        ["bash", "-c", _VALIDATE_LOOP], input=data, capture_output=True, check=True
    )
    codes = done.stdout.decode().split()
    assert len(codes) == len(versions)
    return [code == "0" for code in codes]


def kiln_accepts(version: str) -> bool:
    try:
        parse_version(version)
    except InputError:
        return False
    return True


def stricter_than_dpkg(version: str) -> bool:
    """Versions kiln refuses on purpose though dpkg takes them (see kiln.debian.version)."""
    epoch, colon, _ = version.partition(":")
    return version != version.strip() or (bool(colon) and epoch[:1] == "+")


@pytest.mark.parametrize(
    "version",
    [
        "c6",  # the campaign's: upstream must start with a digit
        "12345678901234567890:1.0",  # the campaign's: a 20-digit epoch
        "2147483648:1.0",
        ":1.0",
        "1:",
        "1.0-",
        "-1",
        "1.0-a:b",
        "1.0-1_2",
        "1 .0",
        "1.0-Ü",
        "1.\u0661",  # a digit, but not an ASCII one
        "a1:1.0",
        "1::1",
        "",
        "9" * 5000 + ":1",
    ],
)
def test_versions_dpkg_refuses_are_refused(version: str) -> None:
    with pytest.raises(InputError, match="is not a valid Debian version"):
        parse_version(version)


@pytest.mark.parametrize(
    "version", ["0", "1:2:3", "1.0-1-2", "1.0--1", "2147483647:1", "1a", "1~-1", "1.0-a~b+c.d"]
)
def test_unusual_versions_dpkg_takes_are_taken(version: str) -> None:
    assert dpkg_accepts([version]) == [True]
    parse_version(version)


_CHARS = "0123456789" * 3 + "abcXYZ" + ".+~-:" * 3 + " _\tÜ\u0661"
_PART = st.text(alphabet=_CHARS, max_size=12)
_VERSIONS = st.one_of(
    _PART,
    st.builds(lambda e, u: f"{e}:{u}", st.text(alphabet="0123456789+- ", max_size=12), _PART),
    st.builds(lambda u, r: f"{u}-{r}", _PART, _PART),
    st.builds(
        lambda u: u, st.from_regex(r"\A[0-9]{1,3}:[0-9][a-z0-9.+~:-]{0,8}(-[a-z0-9.+~]{1,5})?\Z")
    ),
)


@given(st.lists(_VERSIONS, min_size=1, max_size=40))
def test_kiln_and_dpkg_agree_on_what_a_version_is(versions: list[str]) -> None:
    for version, by_dpkg in zip(versions, dpkg_accepts(versions), strict=True):
        by_kiln = kiln_accepts(version)
        if by_kiln:
            assert by_dpkg, f"kiln accepts {version!r}, dpkg refuses it"
        elif by_dpkg:
            assert stricter_than_dpkg(version), f"dpkg accepts {version!r}, kiln refuses it"
