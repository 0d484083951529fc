"""The filesystem plan: package members, merged /usr, conflicts, hostile members."""

from __future__ import annotations

import pytest

from assemble.helpers import MakeDeb, member, pkg
from kiln.assemble import Diversion
from kiln.assemble.fs import USRMERGE, Plan, normalise_path, symlink_entry
from kiln.assemble.plan import plan_from_packages
from kiln.errors import InputError


def test_members_from_a_real_deb_keep_modes_and_owners(make_deb: MakeDeb) -> None:
    p = make_deb("hello", {"usr/bin/hello": (b"#!x\n", 0o755), "etc/hello.conf": b"a=1\n"})
    plan = plan_from_packages([p], arch="amd64")
    entry = plan.get("usr/bin/hello")
    assert entry is not None
    assert (entry.kind, entry.mode, entry.uid, entry.gid, entry.package) == (
        "file",
        0o755,
        0,
        0,
        "hello",
    )
    assert plan.read("etc/hello.conf") == b"a=1\n"
    assert plan.entries["usr/bin"].kind == "dir"


def test_merged_usr_moves_paths_and_links_top_level_dirs() -> None:
    p = pkg(
        "old",
        member("./bin/", "dir"),
        member("./bin/tool", content=b"t"),
        member("./lib/x86_64-linux-gnu/libx.so.1", content=b"x"),
        member("./lib/x86_64-linux-gnu/libx.so", "symlink", link_target="libx.so.1"),
        member("./sbin/up", "symlink", link_target="../usr/bin/real"),
    )
    plan = plan_from_packages([p], arch="amd64")
    assert plan.read("usr/bin/tool") == b"t"
    assert "bin/tool" not in plan
    for alias in ("bin", "sbin", "lib", "lib64"):
        link = plan.get(alias)
        assert link is not None
        assert (link.kind, link.link_target, link.package) == ("symlink", f"usr/{alias}", USRMERGE)
    assert plan.resolve("bin/tool") == "usr/bin/tool"
    assert plan.resolve("lib/x86_64-linux-gnu/libx.so") == "usr/lib/x86_64-linux-gnu/libx.so.1"
    # a relative target that climbed out of /sbin is rewritten for its new place
    assert plan.entries["usr/sbin/up"].link_target == "../bin/real"


def test_arm64_gets_no_lib64_link_unless_something_lives_there() -> None:
    plan = plan_from_packages(
        [pkg("a", member("usr/lib/aarch64-linux-gnu/x", content=b""))], arch="arm64"
    )
    assert "lib64" not in plan
    assert plan.entries["lib"].link_target == "usr/lib"


def test_base_files_own_usrmerge_links_are_accepted() -> None:
    p = pkg("base-files", member("bin", "symlink", link_target="usr/bin"))
    plan = plan_from_packages([p], arch="amd64")
    assert plan.entries["bin"].package == USRMERGE


def test_two_packages_shipping_one_path_is_an_error_naming_both() -> None:
    a = pkg("alpha", member("usr/bin/tool", content=b"a"))
    b = pkg("beta", member("usr/bin/tool", content=b"b"))
    with pytest.raises(InputError, match=r"alpha and beta both ship /usr/bin/tool"):
        plan_from_packages([b, a], arch="amd64")


def test_identical_files_in_two_packages_are_still_a_conflict() -> None:
    a = pkg("alpha", member("etc/x", content=b"same"))
    b = pkg("beta", member("etc/x", content=b"same"))
    with pytest.raises(InputError, match="both ship /etc/x"):
        plan_from_packages([a, b], arch="amd64")


def test_shared_directories_are_fine() -> None:
    a = pkg("alpha", member("usr/share/x", "dir"), member("usr/share/x/a", content=b""))
    b = pkg("beta", member("usr/share/x", "dir"), member("usr/share/x/b", content=b""))
    plan = plan_from_packages([a, b], arch="amd64")
    assert {"usr/share/x/a", "usr/share/x/b"} <= set(plan.entries)


@pytest.mark.parametrize("order", [0, 1])
def test_replaces_decides_the_owner_whatever_the_order(order: int) -> None:
    old = pkg("old", member("usr/bin/tool", content=b"old"), version="1.0")
    new = pkg("new", member("usr/bin/tool", content=b"new"), replaces="old (<< 2.0)")
    packages = [old, new] if order == 0 else [new, old]
    plan = plan_from_packages(packages, arch="amd64")
    assert plan.read("usr/bin/tool") == b"new"
    assert plan.entries["usr/bin/tool"].package == "new"


def test_replaces_with_an_unmet_version_does_not_apply() -> None:
    old = pkg("old", member("usr/bin/tool", content=b"old"), version="3.0")
    new = pkg("new", member("usr/bin/tool", content=b"new"), replaces="old (<< 2.0)")
    with pytest.raises(InputError, match="new and old both ship"):
        plan_from_packages([old, new], arch="amd64")


def test_a_diversion_moves_the_other_package_file_aside() -> None:
    owner = pkg("owner", member("usr/bin/tool", content=b"mine"))
    other = pkg("other", member("usr/bin/tool", content=b"theirs"))
    diversion = Diversion("/usr/bin/tool", "/usr/bin/tool.distrib", "owner")
    plan = plan_from_packages([owner, other], arch="amd64", diversions=(diversion,))
    assert plan.read("usr/bin/tool") == b"mine"
    assert plan.read("usr/bin/tool.distrib") == b"theirs"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../etc/passwd", "leaves the image root"),
        ("./usr/../../etc/shadow", "leaves the image root"),
        ("/etc/passwd", "absolute name"),
        ("usr/bin/a\x00b", "NUL byte"),
    ],
)
def test_traversal_member_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        plan_from_packages([pkg("evil", member(name, content=b"x"))], arch="amd64")
    assert "evil" in str(info.value)


@pytest.mark.parametrize("kind", ["char", "block", "fifo"])
def test_device_nodes_and_fifos_are_refused(kind: str) -> None:
    with pytest.raises(InputError, match=rf"package evil .* is a {kind}"):
        plan_from_packages([pkg("evil", member("dev/sda", kind))], arch="amd64")


def test_symlinks_escaping_the_root_are_kept_but_resolve_inside() -> None:
    p = pkg(
        "links",
        member("etc/escape", "symlink", link_target="../../../../etc/shadow"),
        member("etc/abs", "symlink", link_target="/etc/real"),
        member("etc/real", content=b"inside"),
    )
    plan = plan_from_packages([p], arch="amd64")
    assert plan.entries["etc/escape"].link_target == "../../../../etc/shadow"
    assert plan.resolve("etc/escape") is None  # /etc/shadow is not in the image
    assert plan.read("etc/abs") == b"inside"
    looped = plan.with_entries(symlink_entry("a", "b"), symlink_entry("b", "a"))
    assert looped.resolve("a") is None


def test_a_hard_link_must_point_to_a_file_of_the_same_package() -> None:
    a = pkg("alpha", member("usr/bin/a", content=b"a"))
    b = pkg("beta", member("usr/bin/b", "hardlink", link_target="usr/bin/a"))
    with pytest.raises(InputError, match="hard link /usr/bin/b points to /usr/bin/a"):
        plan_from_packages([a, b], arch="amd64")
    ok = pkg(
        "gamma",
        member("usr/bin/c", content=b"c"),
        member("usr/bin/d", "hardlink", link_target="usr/bin/c"),
    )
    assert plan_from_packages([ok], arch="amd64").read("usr/bin/d") == b"c"


def test_a_package_listed_twice_is_refused() -> None:
    with pytest.raises(InputError, match="listed twice"):
        plan_from_packages([pkg("a"), pkg("a")], arch="amd64")


def test_normalise_path() -> None:
    assert normalise_path("./usr//bin/./x/", where="t") == "usr/bin/x"
    assert normalise_path("/usr/bin", where="t") == "usr/bin"
    assert normalise_path("./", where="t") == ""


def test_plans_are_immutable_values() -> None:
    plan = Plan.empty().with_entries(symlink_entry("a/b", "c"))
    bigger = plan.with_entries(symlink_entry("a/d", "c"))
    assert "a/d" not in plan
    assert "a/d" in bigger
    assert plan.entries["a"].kind == "dir"
