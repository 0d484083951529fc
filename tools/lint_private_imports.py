"""Fail when a kiln module imports another package's private names.

A name that starts with ``_`` (a module such as ``kiln.registry._client`` or a
function such as ``kiln.debian.client._load_release``) belongs to its package: other
packages use the package's public API. import-linter checks module layers; this checks
names, which it cannot. Run by ``make lint``; prints each offence as
``file:line: imports NAME from PACKAGE`` and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "kiln"


def _package(module: str) -> str:
    """``kiln.debian.client`` -> ``debian``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def offences(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        own = relative.parts[0].removesuffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [(alias.name, "") for alias in node.names]
            else:
                continue
            for module, name in targets:
                if not module.startswith("kiln.") or _package(module) == own:
                    continue
                private = [p for p in module.split(".")[2:] if p.startswith("_")]
                if name.startswith("_") and not name.startswith("__"):
                    private.append(name)
                if private:
                    where = f"src/kiln/{relative}:{node.lineno}"
                    found.append(f"{where}: imports {', '.join(private)} from {module}")
    return found


def main() -> int:
    problems = offences()
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} import(s) of another package's private names", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
