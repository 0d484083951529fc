"""kiln catalog build end to end: a real Temporal dev server, the real Debian archive, the
real build, bubblewrap. A family entry whose package a release lacks is skipped with
its reason while the others build; a server that never answers fails its probe test
with its last log lines; status --json and the README table read the recorded outcomes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.factory.catalogbuild import README_BEGIN, state_root, status_rows
from kiln.factory.server import Endpoint
from kiln.spec.family import load_families, plan_catalog
from kiln.text import plain_line

TABLE = """\
family: probe-test
kind: server
entries:
  - name: memcached-mute
    packages: [memcached]
    binary: /usr/bin/memcached
    version: {args: [-V], stdout: "^memcached [0-9]"}
    # listens on 11212: the probe on 11211 never gets an answer
    probe: {command: [/usr/bin/memcached, -vv, -l, 127.0.0.1, -p, "11212", -U, "0"],
            port: 11211, send: "version\\r\\n", expect: "^VERSION", timeout: 8}
    releases: [debian-13]
  - name: ghost
    packages: [kiln-no-such-package-anywhere]
    binary: /usr/bin/ghost
    probe: {port: 8080, expect: "x"}
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "catalog").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "catalog" / "probe.yaml").write_text(TABLE)
    (root / "README.md").write_text("# kiln\n\nintro\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.mark.network
@pytest.mark.slow
def test_build_skips_missing_package_and_reports_a_mute_server(
    checkout: Path,
    temporal: Endpoint,
    own_cache: Path,  # the shared verified .debs and indexes, layouts of this test's own
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KILN_TEMPORAL", temporal.address)
    code = main(["catalog", "build", "--catalog", str(checkout), "--offline", "--workers", "1"])
    captured = capsys.readouterr()
    output = plain_line(captured.out + captured.err)
    # the failing probe is a policy failure (exit 1), not a crash
    assert code == 1, output
    # ghost: skipped in both releases, naming the entry and the missing package
    assert "entry 'ghost': debian-13 (trixie) has no package kiln-no-such-package" in output
    assert "entry 'ghost': debian-12 (bookworm) has no package" in output
    record = json.loads((state_root(checkout) / "results" / "memcached-mute.json").read_text())
    assert not record["error"]
    by_label = {v["label"]: v for v in record["variants"]}
    runtime = by_label["memcached-mute"]
    assert runtime["built"]
    assert runtime["layout_cache_hit"] is False
    assert runtime["closure_programs"] >= 1  # the ELF closure ran and found no problem
    assert runtime["tests_passed"] == 1  # -V answers
    assert runtime["tests_failed"] == 1  # the probe
    (failure,) = runtime["failures"]
    assert "starts and answers on port 11211" in failure
    # the server's own last log lines are in the report (memcached -vv logs its listener)
    assert "11212" in failure or "server listening" in failure.lower(), failure
    assert record["debs"] >= 10
    assert record["debs_cached"] + (record["bytes_downloaded"] > 0) >= 1
    labels = ("memcached-mute", "memcached-mute-dev")
    # nothing changed: the second build restores both images from the layout cache
    assert main(["catalog", "build", "--catalog", str(checkout), "--offline"]) == 1
    capsys.readouterr()
    # one activity and one record per image
    results = state_root(checkout) / "results"
    again = [json.loads((results / f"{n}.json").read_text()) for n in labels]
    hits = {v["label"]: v["layout_cache_hit"] for r in again for v in r["variants"]}
    assert hits == {"memcached-mute": True, "memcached-mute-dev": True}
    for each in again:
        assert each["debs_cached"] == each["debs"]
        assert each["bytes_downloaded"] == 0
    # status --json: one object per image with at least name and spec
    assert main(["catalog", "status", "--json", "--catalog", str(checkout)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"memcached-mute", "memcached-mute-dev"}
    assert rows["memcached-mute"]["built"] is True
    assert rows["memcached-mute"]["spec"].endswith("specs/debian-13/memcached-mute.yaml")
    assert rows["memcached-mute"]["tests"] == "1/2 passed"
    # README: the generated section lists the built image with its recorded size
    generate = ["catalog", "generate", str(checkout / "gen"), "--readme"]
    assert main([*generate, str(checkout / "README.md"), "--catalog", str(checkout)]) == 0
    readme = (checkout / "README.md").read_text()
    assert readme.startswith("# kiln\n\nintro\n")
    assert README_BEGIN in readme
    size = f"{runtime['size'] / 1e6:.1f} MB"
    assert f"| memcached-mute | probe-test | debian-13 | — | {size} |" in readme
    assert "has no package kiln-no-such-package-anywhere" in readme
    assert (checkout / "gen" / "debian-13" / "memcached-mute.yaml").is_file()


def test_readme_says_not_built_yet_and_is_rewritten_in_place(tmp_path: Path) -> None:
    from kiln.factory.catalogbuild import README_END, readme_table

    root = Path(__file__).resolve().parents[2]
    plan = plan_catalog(load_families(root / "catalog", reserved=["redis", "nginx"]))
    rows = status_rows(tmp_path / "state", plan.images)
    assert len(rows) == plan.count_images()
    readme = tmp_path / "README.md"
    readme.write_text("# top\n")
    readme_table(readme, rows, [])
    first = readme.read_text()
    assert "| curl | tools | debian-13 | `curlimages/curl*` | not built yet |" in first
    assert " MB |" not in first  # nothing built: no size anywhere
    readme.write_text(first + "\n## after\n")
    readme_table(readme, rows, [])
    second = readme.read_text()
    assert second.count(README_BEGIN) == 1
    assert second.count(README_END) == 1
    assert second.endswith("## after\n")


def test_damaged_result_record_reads_as_not_built(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    plan = plan_catalog(load_families(root / "catalog", reserved=["redis", "nginx"]))
    curl = next(i for i in plan.images if i.name == "curl")
    results = tmp_path / "results"
    results.mkdir()
    for garbage in (b"{", b"[1, 2]", b'{"name": 1}', b"\xff" * 10, b"[" * 5000):
        (results / "curl.json").write_bytes(garbage)
        (row, dev) = status_rows(tmp_path, [curl])
        assert not row.built
        assert row.size is None
        assert dev.tests == "not run"


def test_a_variant_build_keeps_the_other_variants_record(tmp_path: Path) -> None:
    from kiln.factory.catalogbuild import ImageOutcome, VariantOutcome, record

    runtime = VariantOutcome("jq", "runtime", built=True, size=6_000_000, tests_passed=2)
    record(tmp_path, ImageOutcome("jq", "tools", "debian-13", "/s/jq.yaml", variants=[runtime]))
    dev = VariantOutcome("jq-dev", "dev", built=True, size=31_000_000, tests_passed=3)
    record(tmp_path, ImageOutcome("jq", "tools", "debian-13", "/s/jq.yaml", variants=[dev]))
    kept = json.loads((tmp_path / "jq.json").read_text())
    assert [v["label"] for v in kept["variants"]] == ["jq", "jq-dev"]
    # a record of another spec file is not merged
    other = VariantOutcome("jq-dev", "dev", built=False)
    record(tmp_path, ImageOutcome("jq", "tools", "debian-13", "/t/jq.yaml", variants=[other]))
    assert [v["label"] for v in json.loads((tmp_path / "jq.json").read_text())["variants"]] == [
        "jq-dev"
    ]


def test_one_record_per_image_and_status_reads_both(tmp_path: Path) -> None:
    """One activity per image: the runtime and -dev images of a spec record separately
    (they build at once on different workers) and status shows both."""
    from kiln.factory.catalogbuild import ImageOutcome, VariantOutcome, image_label, record

    root = Path(__file__).resolve().parents[2]
    plan = plan_catalog(load_families(root / "catalog", reserved=["redis", "nginx"]))
    jq = next(i for i in plan.images if i.name == "jq")
    results = tmp_path / "results"
    runtime = VariantOutcome("jq", "runtime", built=True, size=6_000_000, tests_passed=2)
    dev = VariantOutcome("jq-dev", "dev", built=True, size=31_000_000, tests_failed=1)
    dev.failures.append("dpkg database lists the image's package: exit code 1")
    spec = str(tmp_path / "specs" / "debian-13" / "jq.yaml")
    record(
        results, ImageOutcome("jq", "tools", "debian-13", spec, requested=["dev"], variants=[dev])
    )
    record(
        results,
        ImageOutcome("jq", "tools", "debian-13", spec, requested=["runtime"], variants=[runtime]),
    )
    assert sorted(p.name for p in results.iterdir()) == ["jq-dev.json", "jq.json"]
    rows = {r.name: r for r in status_rows(tmp_path, [jq])}
    assert rows["jq"].built
    assert rows["jq"].tests == "2/2 passed"
    assert rows["jq"].error == ""
    assert rows["jq-dev"].size == 31_000_000
    assert rows["jq-dev"].tests == "0/1 passed"
    assert rows["jq-dev"].error.startswith("dpkg database")
    # a failed activity of the -dev image records its error for that image only
    failed = ImageOutcome("jq", "tools", "debian-13", spec, error="boom", requested=["dev"])
    record(results, failed)
    rows = {r.name: r for r in status_rows(tmp_path, [jq])}
    assert rows["jq-dev"].error == "boom"
    assert not rows["jq-dev"].built
    assert rows["jq"].error == ""
    assert (image_label("jq", ["dev"]), image_label("jq", ["runtime"])) == ("jq-dev", "jq")
    assert image_label("jq", []) == "jq"


def test_jobs_are_one_per_image(tmp_path: Path) -> None:
    from kiln.factory.catalogbuild import jobs_for, workflow_id

    root = Path(__file__).resolve().parents[2]
    plan = plan_catalog(load_families(root / "catalog", reserved=["redis", "nginx"]))
    images = [i for i in plan.images if i.name in ("jq", "curl")]
    jobs = jobs_for(tmp_path, images)
    assert sorted(j.label for j in jobs) == ["curl", "curl-dev", "jq", "jq-dev"]
    assert all(len(j.variants) == 1 for j in jobs)
    only = jobs_for(tmp_path, images, variants={"jq": ["dev"]})
    assert sorted(j.label for j in only) == ["curl", "curl-dev", "jq-dev"]
    assert workflow_id(jobs) != workflow_id(only)


def test_build_warns_when_a_worker_process_died(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline: the plan, Temporal and the workflow are stand-ins; the worker process is a
    real process that exits at once. The build says so and names its log."""
    import kiln.cli.catalog as cli
    import kiln.factory.catalogbuild as engine
    import kiln.factory.engine
    import kiln.factory.server

    found = plan_catalog(load_families(checkout / "catalog"), network_tests=False)
    monkeypatch.setattr(cli, "_plan", lambda *_, **__: found)
    monkeypatch.setattr(kiln.factory.server, "endpoint_for", lambda _: Endpoint("127.0.0.1:1"))

    async def no_client(_: Endpoint) -> None:
        return None

    async def no_outcomes(*_: object, **__: object) -> list[object]:
        return []

    dead = subprocess.Popen(["false"])
    dead.wait()
    monkeypatch.setattr(kiln.factory.engine, "connect", no_client)
    monkeypatch.setattr(engine, "run_catalog", no_outcomes)
    monkeypatch.setattr(engine, "start_worker_processes", lambda *_, **__: [dead])
    assert main(["catalog", "build", "--catalog", str(checkout), "--workers", "2"]) == 0
    err = plain_line(capsys.readouterr().err)
    assert "worker process 1 exited early (exit code 1)" in err
    assert "workers/1.log" in err
