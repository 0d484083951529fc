"""bench/fixcommits.py on a one-repository data set laid out like fixbench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from research.conftest import Upstream, git, record_json

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fixcommits.py"


def test_bench_json_has_both_rankers(upstream: Upstream, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "repos").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(upstream.work), str(data / "repos" / "upstream.git"))
    leaky = record_json(cve="CVE-2023-0002", fix_commits=[upstream.fix],
                        flags={"fix_commit_message_mentions_cve": True})  # fmt: skip
    lines = [json.dumps(record_json(fix_commits=[upstream.fix])), json.dumps(leaky)]
    (data / "cves.jsonl").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(data), "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    for name in ("baseline", "kiln"):
        assert result[name]["top1"] == 1.0
        assert result[name]["clean"]["cves"] == 1.0  # the flagged record left out
        assert result[name]["median_candidates"] == 8  # every commit of the demo history
        assert result[name]["seconds_per_cve"] < 30


def test_bench_refuses_a_garbage_data_set(tmp_path: Path) -> None:
    (tmp_path / "cves.jsonl").write_text("nope\n")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "cves.jsonl:1" in out.stderr
