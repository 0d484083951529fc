"""Publish benchmark: kiln publish of the python image to a local registry, and verify.

Run: `.venv/bin/python bench/publish.py [SPEC]` (part of `make bench`). Starts Debian's
docker-registry on a free loopback port, then measures in one run:
- cold publish: both archs and both variants, with image signatures, provenance,
  SBOMs (SPDX + CycloneDX per platform) and the test report, into an empty registry;
- warm publish: the same again (layers already present: only manifests should move);
- warm publish twice more, and `kiln verify` of the pushed image five times, as whole
  processes (median and range: a single run on a busy machine says little).
The peer for size is skopeo copying the same layout (no attestations).
Targets (issue 4): warm publish <= 3 s, verify <= 1 s.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixtures.registry import start_registry  # noqa: E402 (tests/ holds the fixture)

KILN = str(ROOT / ".venv/bin/kiln")
VERIFY_RUNS = 5


def _seconds(times: list[float]) -> str:
    """Median (min-max) of several runs: one run on a busy machine says little."""
    ordered = sorted(times)
    return f"{statistics.median(ordered):.2f}s ({ordered[0]:.2f}-{ordered[-1]:.2f})"


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def _sent(stdout: str) -> str:
    found = re.findall(r"\((\d+) new image blobs, (\d+) attestations, ([\d.]+) MiB sent\)", stdout)
    blobs = sum(int(b) for b, _, _ in found)
    mib = sum(float(m) for _, _, m in found)
    return f"{blobs} blobs, {mib:.2f} MiB"


def main() -> None:
    spec = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "images/python.yaml"
    table = Table(title=f"publish {spec.name} (amd64 + arm64, runtime + dev)")
    for column in ("step", "time", "sent"):
        table.add_column(column, justify="left" if column == "step" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "KILN_KEY_PASSWORD": "bench"}
        _run([KILN, "keygen", "--out", str(work / "bench")], env)
        key, pub = work / "bench.key", work / "bench.pub"
        out = work / "out"
        _run([KILN, "build", str(spec), "--output", str(out)], env)  # not measured: build
        with start_registry(work / "registry") as registry:
            dest = f"{registry.host}/kiln"
            publish = [KILN, "publish", str(spec), "--registry", dest, "--key", str(key),
                       "--output", str(out)]  # fmt: skip
            cold, cold_out = _run(publish, env)
            table.add_row("kiln publish, cold (empty registry)", f"{cold:.2f}s", _sent(cold_out))
            warm, warm_out = _run(publish, env)
            table.add_row("kiln publish, warm (layers present)", f"{warm:.2f}s", _sent(warm_out))
            again = sorted(_run(publish, env)[0] for _ in range(2))
            table.add_row("kiln publish, warm, 2 more runs", _seconds(again), "")
            ref = f"{dest}/{spec.stem}:latest"
            verify = [_run([KILN, "verify", ref, "--key", str(pub), "--require", "provenance",
                            "--require", "spdx"], env)[0] for _ in range(VERIFY_RUNS)]  # fmt: skip
            table.add_row(f"kiln verify (whole process, {VERIFY_RUNS} runs)", _seconds(verify), "")
            name = spec.stem
            skopeo, _ = _run(["skopeo", "copy", "--all", "--dest-tls-verify=false",
                              f"oci:{out / name}:{_tag(out / name)}",
                              f"docker://{registry.host}/skopeo/{name}:latest"], env)  # fmt: skip
            table.add_row("skopeo copy --all, cold (image only, peer)", f"{skopeo:.2f}s", "")
    Console().print(table)


def _tag(layout: Path) -> str:
    import json

    manifests = json.loads((layout / "index.json").read_text())["manifests"]
    return str(manifests[0]["annotations"]["org.opencontainers.image.ref.name"])


if __name__ == "__main__":
    main()
