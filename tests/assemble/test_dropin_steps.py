"""Steps that make -dev images drop-in replacements: path-exclude, wheels, apt sources, _apt."""

from __future__ import annotations

import pytest
from debian.deb822 import Deb822

from assemble.helpers import make_input, member, pkg
from assemble.test_wheels import make_wheel
from kiln.assemble import AptSource, PackageInput, WheelInstall, assemble
from kiln.assemble.fs import Plan, file_entry
from kiln.assemble.steps import APT_SOURCES, PATH_EXCLUDE_CFG, apt_sources, path_exclude
from kiln.errors import InputError

MARKER = "usr/lib/python3.13/EXTERNALLY-MANAGED"
SOURCES = (
    AptSource("http://mirror.invalid/debian", ("trixie", "trixie-updates")),
    AptSource("http://mirror.invalid/debian-security", ("trixie-security",)),
)


def _python(*extra: PackageInput) -> tuple[PackageInput, ...]:
    return (
        pkg(
            "libpython3.13-stdlib",
            member("./usr/lib/python3.13/os.py", content=b"# os\n"),
            member(f"./{MARKER}", content=b"[externally-managed]\n"),
        ),
        *extra,
    )


def _dpkg() -> PackageInput:
    return pkg("dpkg", member("./usr/bin/dpkg", content=b"dpkg", mode=0o755))


def _apt(keyring: bool = True) -> tuple[PackageInput, ...]:
    apt = pkg("apt", member("./usr/bin/apt-get", content=b"apt", mode=0o755))
    if not keyring:
        return (apt,)
    key = pkg(
        "debian-archive-keyring",
        member("./usr/share/keyrings/debian-archive-keyring.pgp", content=b"keys"),
    )
    return (apt, key)


# ------------------------------------------------------------------------ path-exclude


def test_path_exclude_drops_the_marker_and_tells_dpkg() -> None:
    inp = make_input(
        _python(_dpkg()), variant="dev", path_excludes=("/usr/lib/python3*/EXTERNALLY-MANAGED",)
    )
    plan = assemble(inp).plan
    assert plan.get(MARKER) is None
    assert plan.get("usr/lib/python3.13/os.py") is not None
    cfg = (plan.read(PATH_EXCLUDE_CFG) or b"").decode()
    assert "path-exclude=/usr/lib/python3*/EXTERNALLY-MANAGED\n" in cfg


def test_path_exclude_without_dpkg_drops_files_but_writes_no_dpkg_config() -> None:
    inp = make_input(_python(), path_excludes=("/usr/lib/python3*/EXTERNALLY-MANAGED",))
    plan = assemble(inp).plan
    assert plan.get(MARKER) is None
    assert plan.get(PATH_EXCLUDE_CFG) is None


def test_path_exclude_keeps_kiln_files_and_directories_still_needed() -> None:
    plan = Plan.empty().with_entries(
        file_entry("usr/share/x/a.txt", b"a", package="p"),
        file_entry("usr/share/x/keep.bin", b"b", package="p"),
        file_entry("usr/share/y/kiln.txt", b"k"),  # kiln's own
    )
    inp = make_input((), path_excludes=("/usr/share/*.txt", "/usr/share/x"))
    out = path_exclude(plan, inp)
    assert out.get("usr/share/x/a.txt") is None
    assert out.get("usr/share/x/keep.bin") is not None
    assert out.get("usr/share/x") is not None  # keep.bin still needs it
    assert out.get("usr/share/y/kiln.txt") is not None


def test_path_exclude_drops_a_directory_once_empty() -> None:
    plan = Plan.empty().with_entries(file_entry("usr/share/gone/a", b"a", package="p"))
    out = path_exclude(plan, make_input((), path_excludes=("/usr/share/gone", "/usr/share/gone/*")))
    assert out.get("usr/share/gone") is None
    assert out.get("usr/share") is not None


def test_path_exclude_refuses_an_escaping_pattern() -> None:
    with pytest.raises(InputError, match="leaves the image root"):
        path_exclude(Plan.empty(), make_input((), path_excludes=("/usr/../etc/*",)))


# ------------------------------------------------------------------------------ wheels


def test_wheels_step_installs_pip_from_a_package_wheel() -> None:
    whl = pkg(
        "python3-pip-whl",
        member("./usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", content=make_wheel()),
    )
    py = pkg("python3.13-minimal", member("./usr/bin/python3.13", content=b"\x7fELF", mode=0o755))
    inp = make_input(
        (whl, py),
        variant="dev",
        wheels=(WheelInstall("/usr/share/python-wheels/pip-*.whl", "/usr/bin/python3.13"),),
    )
    plan = assemble(inp).plan
    assert (plan.read("usr/local/bin/pip3.13") or b"").startswith(b"#!/usr/bin/python3.13\n")
    # the wheel's files are not any Debian package's: the dpkg database does not list them
    status = (plan.read("var/lib/dpkg/status") or b"").decode()
    assert "site-packages" not in status


def test_wheels_step_names_the_entry_when_the_wheel_is_missing() -> None:
    inp = make_input(
        (), wheels=(WheelInstall("/usr/share/python-wheels/pip-*.whl", "/usr/bin/python3.13"),)
    )
    with pytest.raises(
        InputError, match=r"wheels\[0\] /usr/share/python-wheels/pip-\*\.whl: no file"
    ):
        assemble(inp)


# ------------------------------------------------------------------------- apt sources


def test_apt_sources_are_deb822_signed_by_the_archive_keyring() -> None:
    plan = assemble(make_input(_apt(), variant="dev", apt_sources=SOURCES)).plan
    text = (plan.read(APT_SOURCES) or b"").decode()
    stanzas = list(Deb822.iter_paragraphs(text))
    assert [dict(s) for s in stanzas] == [
        {
            "Types": "deb",
            "URIs": "http://mirror.invalid/debian",
            "Suites": "trixie trixie-updates",
            "Components": "main",
            "Signed-By": "/usr/share/keyrings/debian-archive-keyring.pgp",
        },
        {
            "Types": "deb",
            "URIs": "http://mirror.invalid/debian-security",
            "Suites": "trixie-security",
            "Components": "main",
            "Signed-By": "/usr/share/keyrings/debian-archive-keyring.pgp",
        },
    ]


def test_no_apt_sources_without_apt_or_without_the_keyring() -> None:
    no_apt = assemble(make_input(_python(), apt_sources=SOURCES)).plan
    assert no_apt.get(APT_SOURCES) is None
    no_key = assemble(make_input(_apt(keyring=False), variant="dev", apt_sources=SOURCES)).plan
    assert no_key.get(APT_SOURCES) is None


def test_a_shipped_sources_file_is_kept() -> None:
    plan = Plan.empty().with_entries(
        file_entry("usr/bin/apt-get", b"apt", mode=0o755),
        file_entry("usr/share/keyrings/debian-archive-keyring.gpg", b"k"),
        file_entry(APT_SOURCES, b"Types: deb\n"),
    )
    out = apt_sources(plan, make_input((), apt_sources=SOURCES))
    assert out.read(APT_SOURCES) == b"Types: deb\n"


@pytest.mark.parametrize(
    "bad",
    [
        AptSource("http://mirror.invalid/debian\nTypes: deb-src", ("trixie",)),
        AptSource("http://mirror.invalid/debian", ("trixie main",)),
        AptSource("http://mirror.invalid/debian", ("",)),
    ],
)
def test_apt_sources_refuse_values_that_would_inject_fields(bad: AptSource) -> None:
    with pytest.raises(InputError, match="not a single printable word"):
        assemble(make_input(_apt(), variant="dev", apt_sources=(bad,)))


# ------------------------------------------------------------------------- _apt user


def test_images_with_apt_get_the_apt_sandbox_user() -> None:
    plan = assemble(make_input(_apt(), variant="dev")).plan
    passwd = (plan.read("etc/passwd") or b"").decode()
    assert "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n" in passwd
    without = assemble(make_input(_python())).plan
    assert "_apt" not in (without.read("etc/passwd") or b"").decode()
