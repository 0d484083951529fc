"""Hostile-YAML benchmark: how fast and how small kiln's refusal of a hostile spec is (issue 13.4).

Run: `.venv/bin/python bench/hostile_yaml.py`. Writes, in a temporary directory, specs
the hostile-input campaign used or that sit at the loader's limits (an alias bomb of 9
levels of 9 aliases, 409 bytes, which reached 2.8 GB RSS after 90 s before the loader
refused aliases; bracket nesting filling the 1 MiB spec limit; 500 levels of block
nesting; a NUL; and a valid-looking 1 MiB spec with one unknown field at its end, the
cost of parsing everything), runs ``kiln lock --check SPEC`` on each in a child process
and prints one table: input size, exit code, wall time and the child's peak RSS
(``wait4``). Nothing here is asserted: it is measured.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
KILN = ROOT / ".venv" / "bin" / "kiln"
HEAD = "name: demo\npackages: [base-files]\n"
LIMIT = 1024 * 1024


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return HEAD + "\n".join(lines) + "\n"


def cases() -> dict[str, str]:
    depth = (LIMIT - len(HEAD) - 8) // 2
    big_tests = "".join(
        f"  - {{name: test {i}, command: [/usr/bin/true, '{i}'], stdout: '^ok$'}}\n"
        for i in range(12_000)
    )
    return {
        "alias bomb (9 x 9)": alias_bomb(),
        "flow nesting, 1 MiB": HEAD + "x: " + "[" * depth + "]" * depth + "\n",
        "block nesting, 500 levels": HEAD
        + "".join(f"{'  ' * i}k:\n" for i in range(500))
        + "  " * 500
        + "v\n",
        "NUL byte": HEAD + "description: a\x00b\n",
        "valid 1 MiB, bad last field": (HEAD + "tests:\n" + big_tests)[: LIMIT - 20]
        + "\nbogus: 1\n",
    }


def run(spec: Path) -> tuple[int, float, int]:
    """Exit code, wall seconds and peak RSS (KiB) of ``kiln lock --check spec``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(KILN), "lock", "--check", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.perf_counter() - start, usage.ru_maxrss


def main() -> None:
    table = Table("spec", "bytes", "exit", "seconds", "peak RSS MB")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in cases().items():
            spec = Path(tmp) / "hostile.yaml"
            spec.write_text(text, encoding="utf-8")
            code, seconds, rss = run(spec)
            table.add_row(
                name, f"{spec.stat().st_size:,}", str(code), f"{seconds:.2f}", f"{rss / 1024:.0f}"
            )
    Console().print(table)


if __name__ == "__main__":
    main()
