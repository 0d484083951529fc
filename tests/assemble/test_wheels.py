"""Installing a wheel the image ships into the plan (kiln.assemble.wheels), and bad wheels."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Mapping

import pytest

from kiln.assemble.fs import Plan, file_entry, symlink_entry
from kiln.assemble.model import WheelInstall
from kiln.assemble.wheels import install_wheel
from kiln.errors import InputError

WHEEL_DIR = "usr/share/python-wheels"
PIP_ENTRY_POINTS = (
    "[console_scripts]\npip = pip._internal.cli.main:main\npip3 = pip._internal.cli.main:main\n"
)


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def make_wheel(
    dist: str = "pip",
    version: str = "25.1.1",
    files: Mapping[str, bytes] | None = None,
    *,
    entry_points: str | None = PIP_ENTRY_POINTS,
    tamper: str | None = None,
) -> bytes:
    """A wheel with a correct RECORD (or one whose ``tamper`` member lies about its hash)."""
    files = dict(files or {f"{dist}/__init__.py": b"__version__ = '1'\n"})
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    )
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points is not None:
        files[f"{info}/entry_points.txt"] = entry_points.encode()
    rows = []
    for name, data in files.items():
        digest = _digest(b"not this" if name == tamper else data)
        rows.append(f"{name},{digest},{len(data)}\n")
    rows.append(f"{info}/RECORD,,\n")
    files[f"{info}/RECORD"] = "".join(rows).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def image(wheel: bytes | None = None, *, name: str = "pip-25.1.1-py3-none-any.whl") -> Plan:
    """A plan with Debian's interpreter, the /usr/local links and the wheel."""
    entries = [
        file_entry("usr/bin/python3.13", b"\x7fELF...", mode=0o755),
        symlink_entry("usr/local/bin/python3.13", "/usr/bin/python3.13"),
    ]
    if wheel is not None:
        entries.append(file_entry(f"{WHEEL_DIR}/{name}", wheel))
    return Plan.empty().with_entries(*entries)


SPEC = WheelInstall(
    wheel="/usr/share/python-wheels/pip-*.whl", interpreter="/usr/local/bin/python3.13"
)
SITE = "usr/local/lib/python3.13/site-packages"


def test_pip_wheel_installs_into_usr_local_like_pip_does() -> None:
    plan = install_wheel(image(make_wheel()), SPEC, where="wheels[0]")

    assert plan.read(f"{SITE}/pip/__init__.py") == b"__version__ = '1'\n"
    for script in ("pip", "pip3", "pip3.13"):
        entry = plan.get(f"usr/local/bin/{script}")
        assert entry is not None, script
        assert entry.mode == 0o755, script
        text = entry.read().decode()
        assert text.startswith("#!/usr/local/bin/python3.13\n"), script
        assert "from pip._internal.cli.main import main" in text
    assert plan.read(f"{SITE}/pip-25.1.1.dist-info/INSTALLER") == b"kiln\n"


def test_installed_record_lists_every_file_with_its_hash() -> None:
    plan = install_wheel(image(make_wheel()), SPEC, where="wheels[0]")
    record = (plan.read(f"{SITE}/pip-25.1.1.dist-info/RECORD") or b"").decode()
    rows = {line.split(",")[0]: line.split(",")[1:] for line in record.splitlines()}
    assert set(rows) >= {
        "pip/__init__.py",
        "pip-25.1.1.dist-info/INSTALLER",
        "../../../bin/pip",
        "../../../bin/pip3",
        "../../../bin/pip3.13",
        "pip-25.1.1.dist-info/RECORD",
    }
    for path, (digest, size) in rows.items():
        if path.endswith("RECORD"):
            continue
        data = plan.read(
            f"usr/local/{path[len('../../../') :]}" if path.startswith("..") else f"{SITE}/{path}"
        )
        assert data is not None, path
        assert digest == _digest(data), path
        assert int(size) == len(data), path


def test_scripts_in_the_data_directory_get_the_interpreter_as_shebang() -> None:
    wheel = make_wheel(
        "tool",
        "1.0",
        {"tool/__init__.py": b"", "tool-1.0.data/scripts/run-tool": b"#!python\nprint(1)\n"},
        entry_points=None,
    )
    spec = WheelInstall(
        wheel="/usr/share/python-wheels/tool-*.whl", interpreter="/usr/local/bin/python3.13"
    )
    plan = install_wheel(image(wheel, name="tool-1.0-py3-none-any.whl"), spec, where="w")
    assert plan.read("usr/local/bin/run-tool") == b"#!/usr/local/bin/python3.13\nprint(1)\n"
    assert plan.get("usr/local/bin/tool3.13") is None  # only pip gets versioned scripts


def test_prefix_is_honoured() -> None:
    spec = WheelInstall(wheel=SPEC.wheel, interpreter="/usr/bin/python3.13", prefix="/opt/py")
    plan = install_wheel(image(make_wheel()), spec, where="w")
    assert plan.get("opt/py/lib/python3.13/site-packages/pip/__init__.py") is not None
    assert (plan.read("opt/py/bin/pip") or b"").startswith(b"#!/usr/bin/python3.13\n")


# ---------------------------------------------------------------------------- bad input


def test_missing_wheel_names_the_pattern_and_the_package_to_add() -> None:
    with pytest.raises(InputError, match=r"wheels\[0\]: no file in the image matches") as err:
        install_wheel(image(None), SPEC, where="wheels[0]")
    assert "python3-pip-whl" in (err.value.hint or "")


def test_two_matching_wheels_are_refused() -> None:
    plan = image(make_wheel()).with_entries(
        file_entry(f"{WHEEL_DIR}/pip-24.0-py3-none-any.whl", make_wheel(version="24.0"))
    )
    with pytest.raises(InputError, match="matches more than one wheel"):
        install_wheel(plan, SPEC, where="w")


def test_missing_interpreter_is_refused() -> None:
    spec = WheelInstall(wheel=SPEC.wheel, interpreter="/usr/local/bin/python3.12")
    with pytest.raises(InputError, match=r"interpreter /usr/local/bin/python3.12 does not exist"):
        install_wheel(image(make_wheel()), spec, where="w")


def test_interpreter_that_is_not_python_x_y_is_refused() -> None:
    plan = image(make_wheel()).with_entries(file_entry("usr/bin/env", b"x", mode=0o755))
    spec = WheelInstall(wheel=SPEC.wheel, interpreter="/usr/bin/env")
    with pytest.raises(InputError, match=r"not a pythonX\.Y binary"):
        install_wheel(plan, spec, where="w")


def test_record_hash_mismatch_is_refused() -> None:
    wheel = make_wheel(tamper="pip/__init__.py")
    with pytest.raises(InputError, match="invalid wheel"):
        install_wheel(image(wheel), SPEC, where="w")


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(InputError, match="not a zip archive"):
        install_wheel(image(b"garbage"), SPEC, where="w")


def test_member_escaping_its_scheme_is_refused() -> None:
    wheel = make_wheel(files={"pip/__init__.py": b"", "pip-25.1.1.data/data/../../../etc/x": b"x"})
    with pytest.raises(InputError, match="leaves the data directory"):
        install_wheel(image(wheel), SPEC, where="w")


def test_wheel_overwriting_a_package_file_is_refused() -> None:
    plan = image(make_wheel()).with_entries(
        file_entry(f"{SITE}/pip/__init__.py", b"old", package="python3-pip")
    )
    with pytest.raises(InputError, match=r"overwrite files already in the image: .*python3-pip"):
        install_wheel(plan, SPEC, where="w")


def test_wheel_without_dist_info_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("pip/__init__.py", b"")
    with pytest.raises(InputError, match="invalid wheel"):
        install_wheel(image(out.getvalue()), SPEC, where="w")
