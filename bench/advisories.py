"""Advisory store benchmark: appends, reads and exports at the size of a busy catalog.

Run: `.venv/bin/python bench/advisories.py [EVENTS] [--db URL]` (default 2,000 events
in a fresh SQLite file in a temporary directory; `--db` takes any SQLAlchemy URL, e.g. a
scratch PostgreSQL database). It appends EVENTS events over 20 images x (EVENTS / 100)
vulnerabilities (a detection, a determination, a remediation attempt, ... in turn), each
append its own transaction as the factory makes them, then times:

* append: events per second, one transaction each;
* history: one (image, vulnerability) read, median of 200;
* state(image): the current state of one image's vulnerabilities;
* state(): every image;
* openvex_for_image: one image's OpenVEX document.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind, openvex_for_image

IMAGES = 20
CYCLE: tuple[tuple[EventKind, dict[str, str]], ...] = (
    (EventKind.DETECTION, {"source": "kiln-scan"}),
    (EventKind.REMEDIATION_ATTEMPTED, {"step": "bump", "outcome": "failed", "reason": "no bump"}),
    (EventKind.TRUE_POSITIVE, {}),
    (EventKind.PENDING_UPSTREAM_FIX, {"note": "waiting for upstream"}),
    (EventKind.FIXED, {"fixed_version": "1.0-1+deb13u1"}),
)


def _event(i: int, vulns: int) -> AdvisoryEvent:
    image = f"image{i % IMAGES}"
    vuln = f"CVE-2025-{10000 + (i // IMAGES) % vulns}"
    kind, data = CYCLE[(i // (IMAGES * vulns)) % len(CYCLE)]
    return AdvisoryEvent(image, vuln, kind, package="libexample1", data=data)


def main(argv: list[str]) -> int:
    events = int(argv[0]) if argv and argv[0].isdigit() else 2_000
    url = argv[argv.index("--db") + 1] if "--db" in argv else None
    with tempfile.TemporaryDirectory() as tmp:
        store = AdvisoryStore.open(url or str(Path(tmp) / "bench.db"))
        vulns = max(1, events // (IMAGES * len(CYCLE)))
        began = time.perf_counter()
        for i in range(events):
            store.append(_event(i, vulns))
        appended = time.perf_counter() - began
        reads = []
        for i in range(200):
            t = time.perf_counter()
            store.history(f"image{i % IMAGES}", f"CVE-2025-{10000 + i % vulns}")
            reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        one = store.state("image0")
        one_state = time.perf_counter() - t
        t = time.perf_counter()
        every = store.state()
        all_state = time.perf_counter() - t
        t = time.perf_counter()
        document = openvex_for_image(store, "image0")
        vex = time.perf_counter() - t
        store.close()
    print(f"events: {events} ({IMAGES} images x {vulns} vulnerabilities)")
    print(f"append: {events / appended:,.0f} events/s ({appended:.2f} s, one transaction each)")
    print(f"history (one pair): median {statistics.median(reads) * 1000:.2f} ms")
    print(f"state(image0): {one_state * 1000:.1f} ms for {len(one)} vulnerabilities")
    print(f"state(): {all_state * 1000:.1f} ms for {len(every)} (image, vulnerability) pairs")
    print(f"openvex_for_image(image0): {vex * 1000:.1f} ms, {len(document)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
