"""kiln's dpkg version ordering agrees with ``dpkg --compare-versions`` itself.

Two property tests: thousands of version pairs taken from the real trixie ``Packages``
index (network), and generated versions exercising epochs, ``~``, letters, digits and
revisions (offline, bounded by hypothesis). dpkg is called from one small shell loop per
batch, split over the machine's cores, since spawning it from Python per pair is slow.
"""

from __future__ import annotations

import lzma
import os
import random
import re
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.debian.version import compare_versions, satisfies
from kiln.errors import InputError
from kiln.net import HttpFetcher

# Prints <, = or > for each "a b" line, using only dpkg's own comparison.
_COMPARE_LOOP = r"""
while read -r a b; do
  if dpkg --compare-versions "$a" lt "$b"; then echo "<"
  elif dpkg --compare-versions "$a" eq "$b"; then echo "="
  else echo ">"; fi
done
"""
_SIGN = {-1: "<", 0: "=", 1: ">"}


def dpkg_compare(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """dpkg's verdict for every pair, in order."""
    workers = max(1, min(os.cpu_count() or 1, 4))
    size = -(-len(pairs) // workers)
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]

    def run(chunk: Sequence[tuple[str, str]]) -> list[str]:
        text = "".join(f"{a} {b}\n" for a, b in chunk)
        done = subprocess.run(
            ["sh", "-c", _COMPARE_LOOP], input=text, capture_output=True, text=True, check=True
        )
        verdicts = done.stdout.split()
        assert len(verdicts) == len(chunk), done.stderr
        return verdicts

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [v for verdicts in pool.map(run, chunks) for v in verdicts]


def assert_agrees(pairs: Sequence[tuple[str, str]]) -> None:
    expected = dpkg_compare(pairs)
    mismatches = [
        (a, b, want, _SIGN[compare_versions(a, b)])
        for (a, b), want in zip(pairs, expected, strict=True)
        if _SIGN[compare_versions(a, b)] != want
    ]
    assert mismatches == []


# --- real versions -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trixie_versions() -> list[str]:
    from kiln.debian.sources import discover_mirrors

    base = discover_mirrors().debian.rstrip("/")
    fetcher = HttpFetcher()
    try:
        body = fetcher.fetch(
            f"{base}/dists/trixie/main/binary-amd64/Packages.xz", max_bytes=128 << 20
        ).body
    finally:
        fetcher.close()
    text = lzma.decompress(body).decode("utf-8")
    versions = set(re.findall(r"^Version: (\S+)$", text, flags=re.MULTILINE))
    # Versions inside relations too: ``(>= 2.38~)``, ``(<< 1:6.3.0~rc1~)``.
    versions.update(re.findall(r"\([<>=]+ ([^)\s]+)\)", text))
    assert len(versions) > 10000
    return sorted(versions)


@pytest.mark.network
def test_agrees_with_dpkg_on_real_trixie_versions(trixie_versions: list[str]) -> None:
    rng = random.Random(13)
    pairs = [(rng.choice(trixie_versions), rng.choice(trixie_versions)) for _ in range(1500)]
    # Neighbours in string order are the hard cases: same prefix, different tails.
    starts = rng.sample(range(len(trixie_versions) - 1), 1500)
    pairs += [(trixie_versions[i], trixie_versions[i + 1]) for i in starts]
    pairs += [(b, a) for a, b in pairs[-300:]] + [(v, v) for v in trixie_versions[:100]]
    assert_agrees(pairs)


# --- generated versions --------------------------------------------------------------

_UPSTREAM_TAIL = "0123456789abcxyzABZ.+~"
_REVISION = "0123456789abz.+~"

upstreams = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("0123456789"),
    st.text(alphabet=_UPSTREAM_TAIL, max_size=8),
)
versions = st.builds(
    lambda epoch, upstream, revision: (
        (f"{epoch}:" if epoch is not None else "") + upstream + (f"-{revision}" if revision else "")
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
    upstreams,
    st.one_of(st.none(), st.text(alphabet=_REVISION, min_size=1, max_size=5)),
)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(versions, versions), min_size=1, max_size=60))
def test_agrees_with_dpkg_on_generated_versions(pairs: list[tuple[str, str]]) -> None:
    assert_agrees(pairs)


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("1.0~rc1", "1.0", "<"),
        ("1.0~~", "1.0~", "<"),
        ("1:0.1", "9.9", ">"),
        ("1.0-1", "1.0-1.1", "<"),
        ("1.0a", "1.0+", "<"),
        ("0:1.0", "1.0", "="),
        ("1.0-0", "1.0", "="),
        ("2.38~", "2.38", "<"),
    ],
)
def test_known_orderings(a: str, b: str, sign: str) -> None:
    assert _SIGN[compare_versions(a, b)] == sign
    assert dpkg_compare([(a, b)]) == [sign]


def test_satisfies_follows_the_operators() -> None:
    assert satisfies("1.2", ">=", "1.2")
    assert satisfies("1.2", "<<", "1.3")
    assert not satisfies("1.2", ">>", "1.2")
    assert satisfies("1.2", None, None)
    with pytest.raises(InputError, match="unknown version relation operator"):
        satisfies("1.2", "=>", "1.0")


@pytest.mark.parametrize("bad", ["", "1.0 beta", "1:", ":1", "x:1", "1.0:1", "1_0"])
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="is not a valid Debian version"):
        compare_versions(bad, "1.0")


# dpkg refuses these: 'version number is empty', 'revision number is empty'
@pytest.mark.parametrize("bad", ["1:-1", "1.0-", "-1"])
def test_empty_upstream_or_revision_is_refused_like_dpkg(bad: str) -> None:
    with pytest.raises(InputError, match="is not a valid Debian version"):
        compare_versions(bad, "1.0")
