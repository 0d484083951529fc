"""The layout cache's key covers the code that shapes layouts: every kiln module the
listed output code imports (statically, lazy-loader stubs and relative imports
included) is listed in OUTPUT_CODE or explained in NOT_OUTPUT, so a new output-shaping
module cannot be left out of the key unnoticed; the catalog's family generator is out."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

import kiln
from kiln.assemble.cache import NOT_OUTPUT, OUTPUT_CODE, code_digest

ROOT = Path(kiln.__file__).parent


def _files(root: Path, part: str) -> list[Path]:
    path = root / part
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _module_file(root: Path, module: str) -> Path | None:
    path = root.joinpath(*module.split(".")[1:])
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _package(root: Path, path: Path) -> list[str]:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return parts[:-1]  # a module's package; for __init__ the package itself


@functools.cache
def _imports(root: Path, path: Path) -> frozenset[Path]:
    sources = [path]
    if path.name == "__init__.py" and path.with_suffix(".pyi").is_file():
        sources.append(path.with_suffix(".pyi"))  # lazy_loader.attach_stub's submodules
    found: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = _package(root, path)
                    base = base[: len(base) - node.level + 1]
                    module = ".".join([*base, *([module] if module else [])])
                if module.split(".")[0] == root.name:
                    found.add(module)
                    found.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == root.name)
    return frozenset(f for m in found if (f := _module_file(root, m)) is not None)


def unexplained(root: Path, listed: Iterable[str], neutral: Iterable[str]) -> list[str]:
    """Modules reached from ``listed`` that neither it nor ``neutral`` covers."""
    covered = [*listed, *neutral]

    def is_covered(path: Path) -> bool:
        rel = path.relative_to(root).as_posix()
        return any(rel == part or rel.startswith(part.rstrip("/") + "/") for part in covered)

    start = {f for part in listed for f in _files(root, part) if f.suffix == ".py"}
    seen, todo, missing = set(start), list(start), []
    while todo:
        for reached in _imports(root, todo.pop()):
            if reached in seen:
                continue
            seen.add(reached)
            if is_covered(reached):
                todo.append(reached)  # a neutral module's imports are checked too
            else:
                missing.append(reached.relative_to(root).as_posix())
    return sorted(missing)


def test_every_module_the_output_code_imports_is_listed_or_explained() -> None:
    assert unexplained(ROOT, OUTPUT_CODE, NOT_OUTPUT) == []


def test_the_lists_name_real_modules_once_and_without_stale_reasons() -> None:
    for part in [*OUTPUT_CODE, *NOT_OUTPUT]:
        assert (ROOT / part).exists(), part
    assert not set(OUTPUT_CODE) & set(NOT_OUTPUT)
    for part, reason in NOT_OUTPUT.items():
        assert reason.strip(), part
        # every explanation is needed: without it, something goes unexplained
        rest = {k: v for k, v in NOT_OUTPUT.items() if k != part}
        assert unexplained(ROOT, OUTPUT_CODE, rest), f"NOT_OUTPUT[{part!r}] is never reached"


def test_the_family_generator_is_not_layout_code() -> None:
    listed = {f for part in OUTPUT_CODE for f in _files(ROOT, part)}
    assert ROOT / "spec" / "family.py" not in listed
    assert ROOT / "spec" / "model.py" in listed
    assert len(code_digest()) == 64


def test_the_check_fails_on_an_unlisted_module(tmp_path: Path) -> None:
    """The check itself can fail: a listed module importing a new one, absolutely,
    relatively or through a lazy stub, is reported until it is listed or explained."""
    pkg = tmp_path / "kiln"
    (pkg / "shape").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "shape" / "__init__.py").write_text("")
    (pkg / "shape" / "__init__.pyi").write_text("from .lazy import thing\n")
    (pkg / "shape" / "lazy.py").write_text("thing = 1\n")
    (pkg / "shape" / "main.py").write_text("from kiln.helper import x\nfrom . import rel\n")
    (pkg / "shape" / "rel.py").write_text("")
    (pkg / "helper.py").write_text("from kiln.deeper import y\nx = 1\n")
    (pkg / "deeper.py").write_text("y = 1\n")
    # `from . import rel` runs the package's __init__ too
    assert unexplained(pkg, ["shape/main.py"], []) == [
        "helper.py",
        "shape/__init__.py",
        "shape/rel.py",
    ]
    assert unexplained(
        pkg, ["shape/main.py", "shape/rel.py"], ["helper.py", "shape/__init__.py"]
    ) == [
        "deeper.py",
        "shape/lazy.py",
    ]
    assert unexplained(pkg, ["shape"], ["helper.py", "deeper.py"]) == []
    assert unexplained(pkg, ["shape/__init__.py"], []) == ["shape/lazy.py"]
