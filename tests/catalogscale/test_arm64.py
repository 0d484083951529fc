"""The arm64 set: a generated image whose table entry lists arm64 (bc) and a hand-written
image (base) are built for amd64 and arm64, and each platform is unpacked, ELF-checked
and tested (arm64's programs through Debian's qemu-user-static inside bubblewrap: no
binfmt_misc here). Real archive, real builds; a cache of the test's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kiln.factory.catalogbuild import (
    ARM64_ARCHS,
    arm64_images,
    build_and_test,
    hand_written_jobs,
    jobs_for,
    plan,
)
from kiln.sandbox.unpack import resolve_image

ROOT = Path(__file__).resolve().parents[2]


def test_the_arm64_set_is_the_tables_choice_plus_every_hand_written_image(
    tmp_path: Path,
) -> None:
    found = plan(ROOT, None)
    chosen = arm64_images(found)
    assert len({i.entry for i in chosen}) >= 12  # the issue: the 8 originals plus 12 more
    assert all(i.spec["archs"] == ["amd64", "arm64"] for i in chosen)
    assert all(i.spec["archs"] == ["amd64"] for i in found.images if i not in chosen)
    jobs = hand_written_jobs(ROOT, tmp_path, archs=ARM64_ARCHS)
    assert sorted(j.name for j in jobs) == sorted(p.stem for p in (ROOT / "images").glob("*.yaml"))
    assert len(jobs) >= 8
    for job in jobs:
        copied = Path(job.spec)
        assert copied.parent == tmp_path / "specs" / "hand-written"
        assert copied.read_bytes() == (ROOT / "images" / copied.name).read_bytes()
        assert job.archs == ["amd64", "arm64"]
        assert job.variants == ["runtime"]


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None, reason="no qemu-user-static")
def test_generated_and_hand_written_images_pass_on_amd64_and_arm64(
    tmp_path: Path, own_cache: Path
) -> None:
    del own_cache
    state = tmp_path / "state"
    (bc,) = arm64_images(plan(ROOT, None, names=["bc"]))
    (generated,) = jobs_for(state, [bc], variants={"bc": ["runtime"]}, archs=ARM64_ARCHS)
    (base,) = [j for j in hand_written_jobs(ROOT, state, archs=ARM64_ARCHS) if j.name == "base"]
    checked_in = (ROOT / "images" / "base.lock.json").read_bytes()
    single = build_and_test(
        jobs_for(tmp_path / "amd64", [bc], variants={"bc": ["runtime"]})[0]
    ).variants[0]
    for job in (generated, base):
        outcome = build_and_test(job)
        assert outcome.ok, (outcome.error, [v.failures for v in outcome.variants])
        (image,) = outcome.variants
        assert image.archs == ["amd64", "arm64"]
        layout = Path(job.output) / job.name
        for arch in ("amd64", "arm64"):
            assert resolve_image(layout, arch=arch).arch == arch
        if job is generated:
            # every test ran once per platform: twice the amd64-only build's count
            assert image.tests_passed == 2 * single.tests_passed > 0
            assert image.closure_programs == 2 * single.closure_programs > 0
        else:
            assert image.tests_passed >= 2
    # the relock went to the copy: the checked-in lock is untouched
    assert (ROOT / "images" / "base.lock.json").read_bytes() == checked_in


@pytest.mark.parametrize(
    "selection", [["--family", "tools"], ["--image", "bc"], ["--release", "debian-13"]]
)
def test_arm64_refuses_another_selection_before_building(
    selection: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiln.cli.main import main

    code = main(["catalog", "build", "--arm64", *selection, "--catalog", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--arm64 builds its own selection" in err
    assert "Traceback" not in err
    assert not (tmp_path / ".kiln").exists()  # nothing planned, written or started
