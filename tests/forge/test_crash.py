"""kill -9 of a process in the middle of opening pull requests leaves no half state.

A child process opens and updates pull requests for several images in a loop on a real
repository; it is killed with SIGKILL at a random moment, again and again. After each
kill every kiln branch has its record with the same head, and every record its branch:
the branch and ``refs/kiln/prs`` move in one transaction or not at all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kiln.forge import RECORDS_REF, LocalGitForge

from .conftest import git

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from conftest import change
    from kiln.forge import LocalGitForge

    forge = LocalGitForge(Path(sys.argv[1]), clock=lambda: 1767225600)
    n = int(sys.argv[3])
    while True:
        for image in ("python", "node", "nginx"):
            n += 1
            forge.open_or_update(change(f"g{n}", image=image, lock=str(n).encode()))
    """
)


def _check_consistent(catalog: Path) -> int:
    refs = dict(
        line.split()[::-1]
        for line in git(
            catalog, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/kiln"
        ).splitlines()
    )
    prs = LocalGitForge(catalog).list()
    assert {f"refs/heads/{pr.branch}": pr.head for pr in prs} == refs
    return len(prs)


def test_kill_9_mid_write_leaves_branches_and_records_consistent(catalog: Path) -> None:
    for image in ("node", "nginx"):
        (catalog / "images" / f"{image}.lock.json").write_text("{}\n")
    git(catalog, "add", ".")
    git(catalog, "commit", "-q", "-m", "more images")
    rng = random.Random(16)
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    generation = 0
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(catalog), here, str(generation)], env=env
        )
        time.sleep(rng.uniform(0.6, 1.5))  # past the interpreter's start, into the writes
        child.send_signal(signal.SIGKILL)
        child.wait()
        generation += 1000
        _check_consistent(catalog)
    count = _check_consistent(catalog)
    assert not list((catalog / ".git").glob("kiln-*"))  # no temporary index left there
    assert count == 3  # one pull request per image, updated, never a second
    history = json.loads(git(catalog, "show", f"{RECORDS_REF}:1.json"))["history"]
    assert len(history) > 1  # the writes did happen between the kills
