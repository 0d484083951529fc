"""Catalog benchmark: build and test catalog images through the factory's workflow.

Run: `.venv/bin/python bench/catalog.py [--family F | --image NAME ... | --sample]
[--variant runtime|dev] [--workers 1 2] [--no-warm] [--shared-cache] [--arm64]
[--json FILE]`.
Needs the Debian archive (network) and the pinned Temporal CLI; starts its own dev
server on free ports (and stops it).

With no selection it builds every generated image (686 images; the whole catalog, which
this machine's shared CPUs should not be given in a working session). For each worker
count in `--workers` it runs `kiln catalog build` (a subprocess, its own
`$KILN_CACHE`) with the .deb cache warm (the shared cache's verified blobs and indexes
are linked in) and the layout cache cold, so the runs compare like with like; then,
unless `--no-warm`, a rerun with nothing changed (every layout restored from the cache
the last run filled, and the passing test outcomes and scans it remembered:
``kiln.factory.outcomecache``). `--shared-cache` builds in `$KILN_CACHE` itself instead
of a fresh cache (what this machine built before is reused). Per run it reports the
wall time, layout-cache and .deb-cache hit rates, the tests and scans reused, the
images' layers (referenced, distinct, their bytes) and layer-cache hits (a shared base
layer linked instead of compressed again), bytes downloaded, the failures per family
with their reasons, and it projects the time of N workers for the whole catalog from
the measured per-image costs and the measured 1 -> 2 worker speed-up. With `--arm64`,
each run then builds the arm64 set (`kiln catalog build --arm64`) and reports it apart
(`"arm64"`: its time, images passing on both platforms, failures with reasons).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kiln.debian.cache import default_cache_root  # noqa: E402
from kiln.factory.catalogbuild import HAND_WRITTEN, SAMPLE, plan, state_root  # noqa: E402
from kiln.factory.server import start_dev_server, stop_server  # noqa: E402
from kiln.spec.family import load_families, plan_catalog  # noqa: E402

#: what the shared cache lends a run: verified .debs, indexes, fetch records, and the
#: vulnerability database the images are scanned against (read only)
_WARM_PARTS = ("sha256", "derived", "meta", "vuln.db")


def _run_cache(shared: Path, scratch: Path) -> Path:
    """A cache root with the shared .deb blobs, indexes and vulnerability database
    linked in, no layouts or layers."""
    root = scratch / "cache"
    root.mkdir(parents=True)
    for part in _WARM_PARTS:
        if (shared / part).exists():
            (root / part).symlink_to(shared / part)
    return root


def _kiln() -> str:
    return str(Path(sys.executable).with_name("kiln"))


def _select(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The --image arguments for kiln catalog build, and the sample's dev ones."""
    if args.sample:
        return sorted(SAMPLE), sorted(n for n, v in SAMPLE.items() if "dev" in v)
    return list(args.image or []), []


def _build(
    images: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    variant: str | None,
    workers: int,
) -> float:
    """One ``kiln catalog build``: its wall time (exit 1 = some image failed: recorded)."""
    cmd = [_kiln(), "catalog", "build", "--catalog", str(ROOT), "--workers", str(workers)]
    cmd += [a for name in images for a in ("--image", name)]
    if args.family:
        cmd += ["--family", args.family]
    if variant:
        cmd += ["--variant", variant]
    if args.offline:
        cmd.append("--offline")
    return _timed(cmd, env, "kiln catalog build")


def _build_arm64(args: argparse.Namespace, env: dict[str, str], workers: int) -> float:
    """``kiln catalog build --arm64``: its wall time (exit 1 = some image failed)."""
    cmd = [_kiln(), "catalog", "build", "--catalog", str(ROOT), "--workers", str(workers)]
    cmd += ["--arm64", *(["--offline"] if args.offline else [])]
    return _timed(cmd, env, "kiln catalog build --arm64")


def _timed(cmd: list[str], env: dict[str, str], what: str) -> float:
    """Run one ``kiln catalog build``: its wall time; exit 1 (some image failed) is a
    result, recorded per image; any other exit stops the bench with its stderr."""
    started = time.monotonic()
    done = subprocess.run(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr.decode(errors="replace")[-3000:])
        raise SystemExit(f"{what} exited {done.returncode}")
    return seconds


def _arm64_records() -> list[dict[str, Any]]:
    """The outcomes of the arm64 set: every image tested on arm64 (or hand-written)."""
    return [
        {**r, "variants": [v for v in r["variants"] if "arm64" in v.get("archs", [])]}
        for r in _collect(None)
        if r["family"] == HAND_WRITTEN or any("arm64" in v.get("archs", []) for v in r["variants"])
    ]


def _collect(names: set[str] | None) -> list[dict[str, Any]]:
    results = state_root(ROOT) / "results"
    found = []
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text())
        if names is None or doc["name"] in names:
            found.append(doc)
    return found


def _layers(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """Layers of the built images: referenced, distinct (what a store holds once), their
    bytes, and how many the layer cache gave instead of a compression."""
    built = [v for v in variants if v["built"]]
    sizes: dict[str, int] = {}
    for v in built:
        sizes.update(zip(v.get("layers", []), v.get("layer_sizes", []), strict=False))
    return {
        "layers": sum(len(v.get("layers", [])) for v in built),
        "layer_bytes": sum(sum(v.get("layer_sizes", [])) for v in built),
        "distinct_layers": len(sizes),
        "distinct_layer_bytes": sum(sizes.values()),
        "layer_cache_hits": sum(v.get("layers_reused", 0) for v in built),
    }


def _summary(records: list[dict[str, Any]], seconds: float, workers: int) -> dict[str, Any]:
    variants = [v for r in records for v in r["variants"]]
    failures: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r["error"]:
            failures[r["family"]].append(f"{r['name']}: {r['error'].splitlines()[0]}")
        for v in r["variants"]:
            for f in v["failures"]:
                failures[r["family"]].append(f"{v['label']}: {f.splitlines()[0]}")
    debs = sum(r["debs"] for r in records)
    images_ok = sum(1 for v in variants if v["built"] and not v["failures"])
    return {
        "workers": workers,
        "seconds": round(seconds, 1),
        "specs": len({r["spec"] for r in records}),
        "activities": len(records),
        "images": len(variants),
        "images_ok": images_ok,
        "layout_cache_hits": sum(1 for v in variants if v["layout_cache_hit"]),
        # passing test outcomes and scans of unchanged images reused (kiln.factory.outcomecache)
        "tests_reused": sum(1 for v in variants if v.get("tests_cached")),
        "scans_reused": sum(1 for v in variants if v.get("scan_cached")),
        **_layers(variants),
        "deb_cache_hit_rate": round(sum(r["debs_cached"] for r in records) / debs, 3)
        if debs
        else None,
        "bytes_downloaded": sum(r["bytes_downloaded"] for r in records),
        "images_scanned": sum(1 for v in variants if v.get("cves") is not None),
        "cves_open": sum(v.get("cves") or 0 for v in variants),
        "cves_fixable": sum(v.get("cves_fixable") or 0 for v in variants),
        "per_activity_seconds": [r["seconds"] for r in records],
        "failures": dict(failures),
    }


def _projection(runs: list[dict[str, Any]], total_images: int) -> dict[str, Any]:
    """Whole-catalog wall time for N workers from the measured per-image costs (an
    activity's seconds spread over the images it built) and the measured 1 -> 2 worker
    parallel efficiency (1.0 when only one worker count ran)."""
    cold = [r for r in runs if not r.get("warm")]
    if not cold or not cold[0]["images"]:
        return {}
    mean = sum(cold[0]["per_activity_seconds"]) / cold[0]["images"]
    one = next((r for r in cold if r["workers"] == 1), None)
    two = next((r for r in cold if r["workers"] == 2), None)
    efficiency = 1.0
    if one and two and two["seconds"]:
        efficiency = min(1.0, one["seconds"] / (2 * two["seconds"]))
    serial = mean * total_images
    return {
        "mean_seconds_per_image": round(mean, 1),
        "images_in_catalog": total_images,
        "parallel_efficiency_measured": round(efficiency, 2),
        "minutes_for_workers": {
            n: round(serial / (1 + (n - 1) * efficiency) / 60, 1) for n in (1, 2, 4, 8, 16)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family")
    parser.add_argument("--image", action="append")
    parser.add_argument("--sample", action="store_true", help="the make-test sample")
    parser.add_argument("--variant", choices=("runtime", "dev"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--offline", action="store_true", help="skip the network tests")
    parser.add_argument(
        "--arm64",
        action="store_true",
        help="after each build, the arm64 set too (kiln catalog build --arm64: the "
        "hand-written images and the entries listing arm64, on amd64 and arm64)",
    )
    parser.add_argument(
        "--shared-cache",
        action="store_true",
        help="build in $KILN_CACHE itself (its layouts, layers and remembered outcomes), "
        "not a fresh cache: the first run then measures a rebuild of what this machine "
        "built before, and the warm rerun follows it",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runtime, dev = _select(args)
    shared = default_cache_root()
    full = plan_catalog(load_families(ROOT / "catalog", reserved=[]))
    selected = plan(ROOT, None, family=args.family, names=runtime + dev)
    names = {i.name for i in selected.images}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-catalog-") as tmp:
        server = start_dev_server(Path(tmp) / "temporal", ui=False)
        try:
            for index, asked in enumerate([*args.workers, *([] if args.no_warm else [0])]):
                warm = asked == 0
                workers = asked or args.workers[-1]
                scratch = Path(tmp) / f"run{index}"
                if args.shared_cache:
                    cache = shared
                elif not warm:
                    cache = _run_cache(shared, scratch)
                env = {**os.environ, "KILN_TEMPORAL": server.address, "KILN_CACHE": str(cache)}
                shutil.rmtree(state_root(ROOT) / "results", ignore_errors=True)
                records: list[dict[str, Any]] = []
                seconds = 0.0
                if runtime or not dev:
                    variant = "runtime" if args.sample else args.variant
                    seconds += _build(runtime, args, env, variant, workers)
                    records += _collect(names if runtime else None)
                if dev:
                    seconds += _build(dev, args, env, "dev", workers)
                    # the records of the runtime images built before are not this build's:
                    # count only the -dev images (one record each, or in an older per-spec one)
                    records += [
                        {**r, "variants": [v for v in r["variants"] if v["variant"] == "dev"]}
                        for r in _collect(set(dev))
                        if r.get("requested") == ["dev"] or not r.get("requested")
                    ]
                summary = _summary(records, seconds, workers)
                summary["warm"] = warm
                if args.arm64:
                    arm64_seconds = _build_arm64(args, env, workers)
                    arm64 = _summary(_arm64_records(), arm64_seconds, workers)
                    summary["arm64"] = {
                        k: v for k, v in arm64.items() if k != "per_activity_seconds"
                    }
                runs.append(summary)
                print(json.dumps({k: v for k, v in summary.items() if k != "per_activity_seconds"}))
        finally:
            stop_server(server.pid or 0)
    report = {"runs": runs, "projection": _projection(runs, full.count_images())}
    print(json.dumps(report["projection"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
