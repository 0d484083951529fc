"""kiln migrate's mapping: variants, tags, digests, and every FROM it must leave alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.migrate import Catalog, Kept, Rewrite, Unmapped, explain, migrate
from migrate.conftest import PREFIX, PYTHON, image

GOLDEN = Path(__file__).parent / "golden"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _only(text: str, catalog: Catalog) -> Rewrite | Kept | Unmapped:
    result = migrate(text, catalog, PREFIX)
    assert len(result.outcomes) == 1
    return result.outcomes[0]


def _final(body: str, catalog: Catalog, base: str = "python:3.13-slim") -> Rewrite:
    outcome = _only(f"FROM {base}\n{body}", catalog)
    assert isinstance(outcome, Rewrite), outcome
    return outcome


def test_golden_multi_stage(catalog: Catalog) -> None:
    source = (GOLDEN / "multi-stage.Dockerfile").read_text()
    result = migrate(source, catalog, PREFIX, path="Dockerfile")
    assert result.migrated == (GOLDEN / "multi-stage.migrated.Dockerfile").read_text()
    assert (
        "\n".join(explain(result, catalog)) + "\n"
        == (GOLDEN / "multi-stage.explain.txt").read_text()
    )
    kinds = [(type(o).__name__, o.line) for o in result.outcomes]
    assert kinds == [
        ("Rewrite", 5),
        ("Rewrite", 14),
        ("Unmapped", 18),  # golang: unknown base (and --platform)
        ("Unmapped", 20),  # ${PYTHON}
        ("Kept", 25 - 2),  # scratch
        ("Kept", 25),  # FROM build
        ("Rewrite", 29),  # final stage, digest dropped
    ]
    assert [r.variant for r in result.rewrites] == ["dev", "dev", "runtime"]
    assert not result.complete


def test_every_other_byte_is_kept(catalog: Catalog) -> None:
    source = (
        "\ufeff# syntax=docker/dockerfile:1\r\n"
        "ARG X=1\r\n"
        "\tFrOm\t python:3.13-slim \t AS \t b  # odd but valid? no: trailing words\r\n"
        "FROM python:3.13-slim   aS   build\r\n"
        "RUN echo 'FROM python:3.13-slim'  \\\r\n"
        "    && true\r\n"
        "FROM node:20-slim\r\n"
        "RUN x"
    )
    result = migrate(source, catalog, PREFIX)
    assert result.migrated.count("\r\n") == source.count("\r\n")
    first, second = result.rewrites
    assert (first.line, second.line) == (4, 7)
    # undoing exactly the two token edits gives the original back, byte for byte
    undone = result.migrated.replace(f"FROM {first.replacement}", "FROM python:3.13-slim", 1)
    undone = undone.replace(second.replacement, "node:20-slim", 1)
    assert undone == source
    assert "RUN echo 'FROM python:3.13-slim'" in result.migrated
    assert isinstance(result.outcomes[0], Unmapped)  # the line with trailing words


def test_migrating_twice_changes_nothing(catalog: Catalog) -> None:
    once = migrate("FROM python:3.13-slim AS b\nRUN x\nFROM python:3.13\n", catalog, PREFIX)
    twice = migrate(once.migrated, catalog, PREFIX)
    assert not twice.changed
    assert all(isinstance(o, Kept) and "already a kiln image" in o.reason for o in twice.outcomes)
    assert twice.complete


@pytest.mark.parametrize(
    ("body", "variant", "why"),
    [
        ("COPY app /app\nENV A=1\nWORKDIR /app\nEXPOSE 80\nLABEL a=b\n", "runtime", "no shell"),
        ('COPY . /app\nENTRYPOINT ["/usr/bin/python3", "app.py"]\n', "runtime", "no shell"),
        ('ENTRYPOINT ["python3"]\nCMD ["app.py"]\n', "runtime", "no shell"),
        ("USER nonroot:nonroot\nCOPY --chown=65532:65532 a b\n", "runtime", "no shell"),
        ('HEALTHCHECK NONE\nSTOPSIGNAL SIGTERM\nVOLUME ["/data"]\n', "runtime", "no shell"),
        ('HEALTHCHECK CMD ["python3", "-c", "1"]\n', "runtime", "no shell"),
        ("RUN pip install flask\n", "dev", "has RUN (line 2)"),
        ("COPY a b\nCMD python app.py\n", "dev", "has CMD in shell form (needs /bin/sh)"),
        ("ENTRYPOINT python app.py\n", "dev", "ENTRYPOINT in shell form"),
        ("HEALTHCHECK CMD curl -f localhost\n", "dev", "HEALTHCHECK CMD in shell form"),
        ('SHELL ["/bin/bash", "-c"]\n', "dev", "has SHELL"),
        ("ONBUILD RUN make\n", "dev", "has ONBUILD"),
        ("USER app\n", "dev", "names account 'app' in USER"),
        ("COPY --chown=app:app a b\n", "dev", "names account 'app' in --chown"),
        ('CMD ["python", "app.py"]\n', "dev", "sets CMD but no ENTRYPOINT"),
    ],
)
def test_final_stage_variant(catalog: Catalog, body: str, variant: str, why: str) -> None:
    rewrite = _final(body, catalog)
    assert rewrite.variant == variant
    assert why in rewrite.why
    assert rewrite.replacement == f"{PREFIX}/python:3.13{'-dev' if variant == 'dev' else ''}"


def test_distroless_cmd_stays_an_argument_of_the_entrypoint(catalog: Catalog) -> None:
    rewrite = _final('CMD ["app.py"]\n', catalog, "registry.example/distroless/python3-debian12")
    assert rewrite.variant == "runtime"
    assert rewrite.replacement == f"{PREFIX}/python:latest"


def test_cmd_alone_is_fine_when_the_runtime_has_no_entrypoint(catalog: Catalog) -> None:
    rewrite = _final('CMD ["/app"]\n', catalog, "registry.example/distroless/static-debian12")
    assert (rewrite.image, rewrite.variant) == ("static", "runtime")


def test_account_the_spec_declares_is_known(catalog: Catalog) -> None:
    rewrite = _final('USER node\nCOPY --chown=node:node . .\nCMD ["x.js"]\n', catalog, "node:20")
    assert rewrite.variant == "dev"  # CMD without ENTRYPOINT, not the account
    assert "CMD but no ENTRYPOINT" in rewrite.why
    rewrite = _final('USER node\nENTRYPOINT ["node", "x.js"]\n', catalog, "node:20")
    assert rewrite.variant == "runtime"


def test_build_stages_get_dev_even_without_run(catalog: Catalog) -> None:
    result = migrate("FROM python:3.13 AS a\nCOPY x y\nFROM a\n", catalog, PREFIX)
    rewrite, kept = result.outcomes
    assert isinstance(rewrite, Rewrite)
    assert rewrite.variant == "dev"
    assert "build stage" in rewrite.why
    assert isinstance(kept, Kept)


@pytest.mark.parametrize(
    ("base", "tag"),
    [
        ("python:3.13-slim", "3.13-dev"),
        ("python:3.13.1-slim-bookworm", "3.13-dev"),
        ("python:3", "3.13-dev"),
        ("python", "latest-dev"),
        ("python:latest", "latest-dev"),
        ("library/python:3.13", "3.13-dev"),
        ("registry.example/library/python:3.13-alpine", "3.13-dev"),
        ("node:20-slim", "20.19-dev"),
        ("node:lts-slim", "latest-dev"),
        ("nginx:1.27", "latest-dev"),  # a pattern without tag; versions differ
        ("registry.example/distroless/static-debian12:nonroot", "latest-dev"),
    ],
)
def test_tags_keep_the_version_series(catalog: Catalog, base: str, tag: str) -> None:
    rewrite = _final("RUN true\n", catalog, base)
    assert rewrite.replacement.rsplit(":", 1)[1] == tag


def test_other_version_moves_to_latest_and_says_so(catalog: Catalog) -> None:
    rewrite = _final("RUN true\n", catalog, "nginx:1.27")
    assert rewrite.remarks == (
        "nginx:1.27 asks for version 1.27, which kiln's nginx is not published under: "
        "it is 1.26.3; tag latest",
    )


def test_a_version_of_another_program_is_not_kept() -> None:
    base = replace(image("base", "2.41", ("debian:13*", "debian:trixie*")), version_package="libc6")
    rewrite = _final("RUN apt-get update\n", Catalog((base,)), "debian:13-slim")
    assert rewrite.replacement == f"{PREFIX}/base:latest-dev"
    assert rewrite.remarks == (
        "debian:13-slim asks for version 13, which kiln's base is not published under: "
        "it is 2.41 (it follows libc6); tag latest",
    )
    rewrite = _final("RUN apt-get update\n", Catalog((base,)), "debian:trixie-slim")
    assert (rewrite.replacement, rewrite.remarks) == (f"{PREFIX}/base:latest-dev", ())


def test_image_without_version_gets_latest() -> None:
    static = image("static", None, ("distroless/static*",))
    rewrite = _final("RUN true\n", Catalog((static,)), "registry.example/distroless/static:12")
    assert rewrite.replacement.endswith(":latest-dev")
    assert "no version series" in rewrite.remarks[0]


def test_digest_is_dropped_with_a_note(catalog: Catalog) -> None:
    rewrite = _final("COPY a b\n", catalog, f"python:3.13-slim@{DIGEST}")
    assert rewrite.replacement == f"{PREFIX}/python:3.13"
    assert DIGEST not in rewrite.replacement
    assert any(
        f"the digest {DIGEST} pinned an upstream image and was dropped" in r
        for r in rewrite.remarks
    )


def test_missing_variant_is_unmapped() -> None:
    only_runtime = image("python", "3.13.5", ("python:3.13*",), variants=("runtime",))
    outcome = _only("FROM python:3.13\nRUN true\n", Catalog((only_runtime,)))
    assert isinstance(outcome, Unmapped)
    assert "has no dev variant" in outcome.reason


# Bad input: each FROM left untouched, with its reason and its line.


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "ARG BASE=python:3.13-slim\nFROM ${BASE}\nCOPY a b\n",
            2,
            "the image comes from ARG BASE (line 1): kiln cannot know its value at build "
            "time; its default python:3.13-slim maps to registry.example/kiln/python:3.13 "
            "for this stage: set that default (line 1) or pass --build-arg",
        ),
        (
            "ARG PY=3.13\nFROM python:${PY}-slim\n",
            2,
            "the image comes from ARG PY (line 1): kiln cannot know its value at build time; "
            "change the ARG's default or pass --build-arg with a kiln image",
        ),
        (
            "FROM $IMAGE\n",
            1,
            "the image comes from $IMAGE, which no ARG declares",
        ),
        (
            "FROM --platform=$BUILDPLATFORM python:3.13-slim AS build\nRUN x\n",
            1,
            "--platform=$BUILDPLATFORM is left as written: kiln cannot tell which platform it "
            "stands for at build time (often $BUILDPLATFORM, for a cross build) and kiln "
            "images are built for amd64 and arm64 only; check that and change the image by "
            "hand (kiln's would be registry.example/kiln/python:3.13-dev)",
        ),
        ("FROM ubuntu:24.04\n", 1, "unknown base: no catalog image replaces ubuntu:24.04"),
        (
            "FROM python:2.7\n",
            1,
            "no kiln image for python:2.7: python replaces python:3.13*, python:3, "
            "python:latest, distroless/python3*",
        ),
        (
            f"FROM python@{DIGEST}\n",
            1,
            "python is pinned by digest only: no tag says which version it is; write the tag",
        ),
        ("FROM Python:3\n", 1, "not an image reference: 'Python' is not a repository name"),
        ("FROM python:3.13 AS\n", 1, "malformed FROM: FROM takes an image and an optional"),
        ("FROM python:3.13\\\n-slim\n", 1, "could not be located exactly in the text"),
    ],
)
def test_left_untouched(catalog: Catalog, text: str, line: int, reason: str) -> None:
    result = migrate(text, catalog, PREFIX, path="app/Dockerfile")
    assert not result.changed
    assert result.migrated == text
    (outcome,) = result.outcomes
    assert isinstance(outcome, Unmapped)
    assert outcome.line == line
    assert reason in outcome.reason
    assert not result.complete
    (said,) = (s for s in explain(result, catalog) if s.startswith("app/Dockerfile:"))
    assert said.startswith(f"app/Dockerfile:{line}: left untouched ")


def test_scratch_and_stage_names_are_kept(catalog: Catalog) -> None:
    result = migrate(
        "FROM python:3.13 AS Builder\nRUN x\nFROM scratch\nFROM builder\n", catalog, PREFIX
    )
    _, scratch, stage = result.outcomes
    assert isinstance(scratch, Kept)
    assert "scratch is the empty image" in scratch.reason
    assert isinstance(stage, Kept)
    assert stage.reason == "names the earlier stage 'builder'"
    assert result.complete


def test_a_later_stage_name_is_not_a_stage_reference(catalog: Catalog) -> None:
    result = migrate("FROM later\nFROM python:3.13 AS later\n", catalog, PREFIX)
    assert isinstance(result.outcomes[0], Unmapped)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("kiln", "does not start with a registry host"),
        ("Registry.example/Kiln", "is not HOST[:PORT][/PATH]"),
        ("bad_host.example/kiln", "not a registry host"),
    ],
)
def test_bad_prefix(catalog: Catalog, prefix: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        migrate("FROM python:3\n", catalog, prefix)


def test_prefix_may_be_a_bare_host(catalog: Catalog) -> None:
    rewrite = _only("FROM python:3\nRUN x\n", Catalog((PYTHON,)))
    assert isinstance(rewrite, Rewrite)
    result = migrate("FROM python:3\nRUN x\n", catalog, "localhost:5000/")
    assert result.migrated == "FROM localhost:5000/python:3.13-dev\nRUN x\n"
