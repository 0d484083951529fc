"""Site benchmark: latency of the catalog page and of a 50 MB blob pull over loopback.

Run: `.venv/bin/python bench/site.py [--store out] [--requests 2000] [--blob-requests 64]
[--threads 8]`. Needs docker-registry; no network.

In one run it writes an OCI layout holding one image whose only layer is a 50 MB tar
(random bytes: nothing compresses), serves it with `kiln site` (a subprocess, rate
limit off: this measures the server, not the limiter) and pushes the same layout with
kiln's registry client into Debian's docker-registry on another loopback port. Then,
under bounded load (a fixed number of requests spread over a fixed number of threads,
each thread with its own keep-alive connection, every body read to the end):

* the catalog page (`/`) of the site: the store's images with sizes and CVE counts
  (scans cached after the warm-up request, as in production);
* the manifest, by tag, from both;
* the 50 MB blob, whole, from both (the site's first read hashes the file: the warm-up
  request pays it, as the first pull after a publish does).

`--store DIR` adds DIR's layouts (e.g. `out/` after `make demo`) beside the 50 MB image
so the catalog page lists real images. Prints one table: p50, p99, max and throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixtures.registry import start_registry  # noqa: E402 (tests/ holds the fixture)
from kiln.registry import Reference, RegistryClient, push_layout  # noqa: E402

KILN = str(ROOT / ".venv/bin/kiln")
BLOB_BYTES = 50 * 1024 * 1024
#: docker-registry answers 404 to a GET of an OCI manifest that does not accept its type
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json, "
                    "application/vnd.oci.image.index.v1+json, */*"}  # fmt: skip


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _put(blobs: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(path: Path, size: int) -> str:
    """An OCI layout ``bench:latest`` whose one layer is a ``size``-byte tar; its digest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    payload = os.urandom(size - 10 * 1024)  # the tar's headers and padding fill the rest
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer_bytes = buffer.getvalue()
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_put(blobs, layer_bytes)}
    diff_id = layer["digest"]
    config = _canonical({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })  # fmt: skip
    manifest = _canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(blobs, config)},
        "layers": [layer],
        "annotations": {"org.opencontainers.image.title": "bench",
                        "org.opencontainers.image.description": "a 50 MB layer"},
    })  # fmt: skip
    top = _put(blobs, manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **top,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    }  # fmt: skip
    (path / "index.json").write_bytes(_canonical(index))
    return str(layer["digest"])


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def kiln_site(store: Path, workdir: Path) -> Iterator[str]:
    """``kiln site`` over ``store`` on a free port; its host."""
    port = free_port()
    log = workdir / "site.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [KILN, "site", "--store", str(store), "--port", str(port), "--rate", "0",
             "--db", str(workdir / "vuln.db")],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if fetch(host, "/v2/")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kiln site did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield host
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch(host: str, path: str) -> tuple[int, int]:
    """One GET: status and body length."""
    connection = http.client.HTTPConnection(host, timeout=60)
    try:
        connection.request("GET", path, headers=ACCEPT)
        response = connection.getresponse()
        return response.status, len(response.read())
    finally:
        connection.close()


def load(host: str, path: str, requests: int, threads: int) -> tuple[list[float], int, float]:
    """``requests`` GETs of ``path`` over ``threads`` keep-alive connections: latencies
    (seconds), bytes read, wall time."""
    per_thread = [requests // threads + (1 if i < requests % threads else 0)
                  for i in range(threads)]  # fmt: skip
    lock = threading.Lock()
    latencies: list[float] = []
    total = 0

    def worker(count: int) -> None:
        nonlocal total
        connection = http.client.HTTPConnection(host, timeout=120)
        mine: list[float] = []
        read = 0
        try:
            for _ in range(count):
                start = time.perf_counter()
                connection.request("GET", path, headers=ACCEPT)
                response = connection.getresponse()
                while chunk := response.read(1024 * 1024):
                    read += len(chunk)
                if response.status != 200:
                    raise RuntimeError(f"GET {host}{path}: {response.status}")
                mine.append(time.perf_counter() - start)
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)
            total += read

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, per_thread))
    return latencies, total, time.perf_counter() - wall


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Set up both servers, run the loads, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="also list this store's layouts")
    parser.add_argument("--requests", type=int, default=2000, help="catalog/manifest GETs")
    parser.add_argument("--blob-requests", type=int, default=64, help="50 MB blob GETs")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for tool in ("docker-registry",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (make setup)")
    console = Console()
    table = Table(title=f"kiln site vs docker-registry, loopback, {args.threads} threads")
    for column in ("server", "request", "requests", "p50 ms", "p99 ms", "max ms", "MB/s"):
        table.add_column(column, justify="left" if column in ("server", "request") else "right")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-site-") as tmp:
        work = Path(tmp)
        store = work / "store"
        layer = write_layout(store / "bench", BLOB_BYTES)
        if args.store is not None:
            for layout in sorted(args.store.iterdir()):
                if (layout / "oci-layout").is_file() and layout.name != "bench":
                    (store / layout.name).symlink_to(layout.resolve())
            if (args.store / "kiln.pub").is_file():
                shutil.copy(args.store / "kiln.pub", store / "kiln.pub")
        with start_registry(work / "registry") as registry, kiln_site(store, work) as site:
            # kiln's own client: blobs go as they are (skopeo would compress the layer)
            with RegistryClient.for_host(registry.host) as client:
                target = Reference.parse(f"{registry.host}/kiln/bench:latest")
                push_layout(client, store / "bench", target)
            cases = [
                ("kiln site", site, "/", "catalog page", args.requests),
                ("kiln site", site, "/v2/kiln/bench/manifests/latest", "manifest", args.requests),
                ("docker-registry", registry.host, "/v2/kiln/bench/manifests/latest",
                 "manifest", args.requests),
                ("kiln site", site, f"/v2/kiln/bench/blobs/{layer}", "50 MB blob",
                 args.blob_requests),
                ("docker-registry", registry.host, f"/v2/kiln/bench/blobs/{layer}",
                 "50 MB blob", args.blob_requests),
            ]  # fmt: skip
            for server, host, path, what, count in cases:
                status, _ = fetch(host, path)  # warm-up: scans, the first hash of the blob
                if status != 200:
                    sys.exit(f"{server} answered {status} to GET {path}")
                latencies, read, wall = load(host, path, count, args.threads)
                table.add_row(
                    server, what, str(len(latencies)),
                    f"{statistics.median(latencies) * 1000:.1f}",
                    f"{percentile(latencies, 0.99) * 1000:.1f}",
                    f"{max(latencies) * 1000:.1f}",
                    f"{read / wall / 1e6:.0f}",
                )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
