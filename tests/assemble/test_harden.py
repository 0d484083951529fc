"""The hardening pass: setid bits, world-writable paths, pruning, forbidden programs, ELF audit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from assemble.helpers import MakeDeb, compile_static, make_input, member, pkg
from kiln.assemble import assemble
from kiln.assemble.fs import Entry, Plan, dir_entry, file_entry, symlink_entry
from kiln.assemble.harden import audit_elf, harden
from kiln.errors import InputError, PolicyError


def _plan(*entries: Entry) -> Plan:
    return Plan.empty().with_entries(*entries)


def test_setuid_and_setgid_bits_are_stripped_and_reported() -> None:
    plan = _plan(
        file_entry("usr/bin/su", b"x", mode=0o4755, package="login"),
        file_entry("usr/bin/wall", b"x", mode=0o2755, package="util"),
    )
    hardened, report = harden(plan, make_input(()))
    assert hardened.entries["usr/bin/su"].mode == 0o755
    assert hardened.entries["usr/bin/wall"].mode == 0o755
    assert report.setid_stripped == ("/usr/bin/su", "/usr/bin/wall")


def test_nothing_is_world_writable_except_tmp() -> None:
    plan = _plan(
        dir_entry("tmp", mode=0o1777),
        dir_entry("var/tmp", mode=0o1777),
        file_entry("etc/open", b"", mode=0o666),
        symlink_entry("etc/link", "open"),
    )
    hardened, report = harden(plan, make_input(()))
    assert hardened.entries["tmp"].mode == 0o1777
    assert hardened.entries["var/tmp"].mode == 0o1775
    assert hardened.entries["etc/open"].mode == 0o664
    assert report.world_writable_fixed == ("/etc/open", "/var/tmp")


def test_docs_are_pruned_but_every_copyright_file_stays() -> None:
    plan = _plan(
        file_entry("usr/share/doc/a/copyright", b"GPL", package="a"),
        file_entry("usr/share/doc/a/changelog.Debian.gz", b"1234", package="a"),
        symlink_entry("usr/share/doc/b", "a", package="b"),
        file_entry("usr/share/man/man1/a.1.gz", b"man", package="a"),
        file_entry("usr/share/locale/fr/LC_MESSAGES/a.mo", b"mo", package="a"),
        file_entry("usr/share/info/a.info", b"i", package="a"),
        file_entry("usr/share/lintian/overrides/a", b"l", package="a"),
        file_entry("usr/share/bug/a/control", b"b", package="a"),
        file_entry("usr/share/a/data", b"keep", package="a"),
    )
    hardened, report = harden(plan, make_input(()))
    kept = set(hardened.entries)
    assert {"usr/share/doc/a/copyright", "usr/share/doc/b", "usr/share/a/data"} <= kept
    for gone in ("usr/share/man", "usr/share/locale", "usr/share/info", "usr/share/lintian"):
        assert not any(p == gone or p.startswith(gone + "/") for p in kept), gone
    assert "usr/share/doc/a/changelog.Debian.gz" not in kept
    assert report.pruned_files == 6
    assert report.pruned_bytes == 4 + 3 + 2 + 1 + 1 + 1


def test_runtime_loses_static_libs_and_headers_dev_keeps_them() -> None:
    plan = _plan(
        file_entry("usr/lib/x86_64-linux-gnu/libc.a", b"!<arch>"),
        file_entry("usr/lib/x86_64-linux-gnu/libc.so.6", b"so"),
        file_entry("usr/include/stdio.h", b"h"),
    )
    runtime, report = harden(plan, make_input(()))
    assert set(runtime.entries) >= {"usr/lib/x86_64-linux-gnu/libc.so.6"}
    assert "usr/include" not in runtime
    assert "usr/lib/x86_64-linux-gnu/libc.a" not in runtime
    assert report.dev_files_removed == 2
    dev, _ = harden(plan, make_input((), variant="dev"))
    assert "usr/include/stdio.h" in dev


@pytest.mark.parametrize(
    "path",
    [
        "usr/bin/sh",
        "usr/bin/bash",
        "usr/bin/dash",
        "usr/bin/busybox",
        "usr/bin/apt-get",
        "usr/bin/dpkg",
        "usr/sbin/dpkg-divert",
        "usr/bin/apt",
    ],
)
def test_a_runtime_variant_with_a_shell_or_package_manager_fails(path: str) -> None:
    plan = _plan(file_entry(path, b"x", mode=0o755, package="culprit"))
    with pytest.raises(PolicyError, match="contains a shell or package manager") as info:
        harden(plan, make_input(()))
    assert f"/{path} (from culprit)" in info.value.diagnostics()
    dev, _ = harden(plan, make_input((), variant="dev"))
    assert path in dev
    allowed, _ = harden(plan, make_input((), allow_paths=(f"/{path}",)))
    assert path in allowed


def test_shell_detection_sees_through_merged_usr_package_paths() -> None:
    dash = pkg(
        "dash",
        member("bin/dash", content=b"x", mode=0o755),
        member("bin/sh", "symlink", link_target="dash"),
    )
    with pytest.raises(PolicyError) as info:
        assemble(make_input((dash,)))
    assert "/usr/bin/dash (from dash)" in info.value.diagnostics()


def test_elf_audit_of_a_hardened_static_pie(static_hello: bytes) -> None:
    audit = audit_elf("usr/bin/hello", "hello", static_hello)
    assert audit is not None
    assert audit.kind == "static-executable"
    assert (audit.pie, audit.relro, audit.bind_now, audit.nx_stack) == (True, "full", True, True)
    assert audit.stack_protector
    assert audit.fortify


def test_elf_audit_of_an_unhardened_binary(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    try:
        data = compile_static(tmp_path, hardened=False)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"gcc cannot build the unhardened variant: {exc.stderr.decode()[-200:]}")
    audit = audit_elf("usr/bin/weak", "weak", data)
    assert audit is not None
    assert (audit.kind, audit.pie, audit.relro, audit.nx_stack) == (
        "static-executable",
        False,
        "none",
        False,
    )


def test_elf_audit_of_real_debian_binaries() -> None:
    dpkg = Path("/usr/bin/dpkg")
    libc = sorted(Path("/usr/lib").glob("*-linux-gnu/libz.so.1"))
    if not dpkg.is_file() or not libc:
        pytest.skip("no dpkg/zlib on this host")
    audit = audit_elf("usr/bin/dpkg", "dpkg", dpkg.read_bytes())
    assert audit is not None
    assert audit.kind == "executable"
    assert audit.pie is True  # Debian builds dpkg with hardening=+all
    assert audit.relro == "full"
    assert audit.nx_stack
    lib = audit_elf("usr/lib/libz.so.1", "zlib1g", libc[0].read_bytes())
    assert lib is not None
    assert (lib.kind, lib.pie) == ("shared-object", None)


def test_non_elf_and_truncated_elf_are_not_audited() -> None:
    assert audit_elf("x", "p", b"#!/bin/sh\n") is None
    assert audit_elf("x", "p", b"\x7fELF" + b"\x00" * 10) is None


def test_report_serialises_with_a_summary(static_hello: bytes) -> None:
    plan = _plan(file_entry("usr/bin/hello", static_hello, mode=0o4755, package="h"))
    _, report = harden(plan, make_input(()))
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["summary"]["elf_files"] == 1
    assert doc["summary"]["setid_stripped"] == 1
    assert doc["elf"][0]["path"] == "/usr/bin/hello"


def test_hostile_real_debs_are_neutralised_or_refused(make_deb: MakeDeb, tmp_path: Path) -> None:
    """A setuid binary and an escaping absolute symlink from real .debs; a path conflict."""
    evil = make_deb(
        "evil",
        {
            "usr/bin/suid": (b"\x7fELF-not-really", 0o4755),
            "usr/bin/sgid": (b"x", 0o2711),
            "etc/escape": "->/../../../../etc/shadow",
            "etc/open": (b"x", 0o666),
        },
    )
    rootfs = assemble(make_input((evil,)))
    assert rootfs.plan.entries["usr/bin/suid"].mode == 0o755
    assert rootfs.plan.entries["usr/bin/sgid"].mode == 0o711
    assert rootfs.plan.entries["etc/open"].mode == 0o664
    assert rootfs.plan.entries["etc/escape"].link_target == "/../../../../etc/shadow"
    assert rootfs.plan.resolve("etc/escape") is None  # resolved inside the image: nothing there
    assert rootfs.report.setid_stripped == ("/usr/bin/sgid", "/usr/bin/suid")
    twin = make_deb("twin", {"usr/bin/suid": (b"other", 0o755)})
    with pytest.raises(InputError, match="packages evil and twin both ship /usr/bin/suid"):
        assemble(make_input((evil, twin)))


def test_library_dirs_the_loader_cannot_see_are_reported() -> None:
    plan = _plan(
        file_entry(
            "etc/ld.so.conf.d/x86_64-linux-gnu.conf",
            b"# multiarch\n/usr/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n",
        ),
        file_entry(
            "etc/ld.so.conf.d/zz-private.conf", b"/opt/vendor/lib  # private\ninclude /x\n/empty\n"
        ),
        file_entry("usr/lib/x86_64-linux-gnu/libz.so.1", b"so"),
        file_entry("opt/vendor/lib/libvendor.so.2", b"so"),
        dir_entry("empty"),
        symlink_entry("lib", "usr/lib"),
    )
    _, report = harden(plan, make_input(()))
    assert report.library_dirs_without_cache == ("/opt/vendor/lib",)
    assert report.to_json()["library_dirs_without_cache"] == ["/opt/vendor/lib"]


def test_audits_are_remembered_by_content_not_recomputed(
    static_hello: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.assemble import harden as module

    calls: list[str] = []
    real = module.audit_elf

    def counted(path: str, package: str, data: bytes) -> module.ElfAudit | None:
        calls.append(path)
        return real(path, package, data)

    monkeypatch.setattr(module, "audit_elf", counted)
    monkeypatch.setattr(module, "_AUDITS", {})
    plan = _plan(file_entry("usr/bin/hello", static_hello, mode=0o755, package="hello"))
    first = module.audit_plan(plan)
    assert module.audit_plan(plan) == first  # another image with the same file
    assert calls == ["usr/bin/hello"]
    changed = static_hello[:-1] + bytes([static_hello[-1] ^ 1])
    module.audit_plan(_plan(file_entry("usr/bin/hello", changed, mode=0o755, package="hello")))
    assert calls == ["usr/bin/hello", "usr/bin/hello"]  # other bytes: audited again
