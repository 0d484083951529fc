"""The image steps, one by one, and checked with real tools where one exists."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from assemble.helpers import EPOCH, MakeDeb, make_input, member, pkg
from kiln.assemble import Group, ImageTest, PathSpec, User
from kiln.assemble.fs import Plan, file_entry
from kiln.assemble.plan import plan_from_packages
from kiln.assemble.steps import (
    CA_BUNDLE,
    accounts,
    apply_steps,
    ca_certificates,
    dpkg_metadata,
    image_json,
    localtime,
    nsswitch,
    os_release,
    spec_paths,
    tmp,
)
from kiln.errors import InputError

HOST_CERTS = Path("/usr/share/ca-certificates/mozilla")


def _lines(plan: Plan, path: str) -> list[str]:
    data = plan.read(path)
    assert data is not None, path
    return data.decode().splitlines()


# --------------------------------------------------------------------------- accounts


def test_accounts_write_root_nobody_nonroot_without_hashes() -> None:
    plan = accounts(Plan.empty(), make_input(()))
    passwd = _lines(plan, "etc/passwd")
    assert passwd == [
        "root:x:0:0:root:/root:/usr/sbin/nologin",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    ]
    assert _lines(plan, "etc/group") == ["root:x:0:", "nonroot:x:65532:", "nogroup:x:65534:"]
    assert "etc/shadow" not in plan
    home = plan.get("home/nonroot")
    assert home is not None
    assert (home.kind, home.mode, home.uid, home.gid) == ("dir", 0o700, 65532, 65532)
    assert plan.entries["root"].mode == 0o700


def test_spec_accounts_are_added_and_dev_gets_a_locked_shadow() -> None:
    inp = make_input(
        (),
        variant="dev",
        users=(User("app", 1000, 1000, "/srv/app", "/usr/sbin/nologin", "App"),),
        groups=(Group("app", 1000, ("nonroot",)),),
    )
    plan = accounts(Plan.empty(), inp)
    assert "app:x:1000:1000:App:/srv/app:/usr/sbin/nologin" in _lines(plan, "etc/passwd")
    assert "app:x:1000:nonroot" in _lines(plan, "etc/group")
    shadow = _lines(plan, "etc/shadow")
    assert all(line.split(":")[1] == "*" for line in shadow)
    assert len(shadow) == 4
    assert plan.entries["srv/app"].uid == 1000


@pytest.mark.parametrize(
    ("users", "groups", "message"),
    [
        ((User("root2", 0, 0),), (), "user 'root2' .0. clashes with user 'root'"),
        ((User("nonroot", 1, 1),), (Group("g1", 1),), "clashes with user 'nonroot'"),
        ((), (Group("root", 7),), "group 'root' .7. clashes"),
        ((User("lost", 1001, 4242),), (), "primary gid 4242, no such group"),
        ((User("bad", 1002, 0, gecos="a:b"),), (), "':' or newline"),
    ],
)
def test_bad_spec_accounts_are_refused(
    users: tuple[User, ...], groups: tuple[Group, ...], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        accounts(Plan.empty(), make_input((), users=users, groups=groups))


# -------------------------------------------------------------------------- CA bundle


def _cert_plan(certs: dict[str, bytes], conf: bytes | None, local: dict[str, bytes]) -> Plan:
    entries = [file_entry(f"usr/share/ca-certificates/{k}", v) for k, v in certs.items()]
    entries += [file_entry(f"usr/local/share/ca-certificates/{k}", v) for k, v in local.items()]
    if conf is not None:
        entries.append(file_entry("etc/ca-certificates.conf", conf))
    return Plan.empty().with_entries(*entries)


def _update_ca_certificates(
    tmp_path: Path, certs: dict[str, bytes], conf: bytes, local: dict[str, bytes]
) -> tuple[bytes, dict[str, str]]:
    """Run the host's real update-ca-certificates over a private tree."""
    tool = shutil.which("update-ca-certificates")
    if tool is None or shutil.which("openssl") is None:
        pytest.skip("update-ca-certificates/openssl are not installed")
    certsdir, localdir, etcdir, hooks = (tmp_path / d for d in ("share", "local", "etc", "hooks"))
    for d in (certsdir, localdir, etcdir, hooks):
        d.mkdir()
    for name, data in certs.items():
        (certsdir / name).parent.mkdir(parents=True, exist_ok=True)
        (certsdir / name).write_bytes(data)
    for name, data in local.items():
        (localdir / name).write_bytes(data)
    (tmp_path / "ca.conf").write_bytes(conf)
    subprocess.run(
        [
            tool,
            "--certsconf",
            str(tmp_path / "ca.conf"),
            "--certsdir",
            str(certsdir),
            "--localcertsdir",
            str(localdir),
            "--etccertsdir",
            str(etcdir),
            "--hooksdir",
            str(hooks),
        ],
        check=True,
        capture_output=True,
    )
    links = {p.name: os.readlink(p) for p in etcdir.iterdir() if p.is_symlink()}
    return (etcdir / "ca-certificates.crt").read_bytes(), links


def _host_certs(count: int) -> dict[str, bytes]:
    if not HOST_CERTS.is_dir():
        pytest.skip("no ca-certificates on this host")
    files = sorted(HOST_CERTS.glob("*.crt"))[:count]
    return {f"mozilla/{f.name}": f.read_bytes() for f in files}


def test_ca_bundle_equals_update_ca_certificates_output(tmp_path: Path) -> None:
    certs = _host_certs(120)
    names = sorted(certs)
    # the conf's order rules, '!' deselects, '#' comments, missing entries are skipped,
    # and a certificate without a final newline gets one
    reordered = [*names[5:], *names[:5]]
    last = reordered[-1]
    certs[last] = certs[last].rstrip(b"\n")
    conf_lines = ["# a comment", f"!{reordered[0]}", *reordered[1:], "mozilla/missing.crt", ""]
    conf = "\n".join(conf_lines).encode()
    local = {"zz-corp.crt": certs[names[0]], "aa-corp.crt": certs[names[1]]}
    expected, links = _update_ca_certificates(tmp_path, certs, conf, local)
    plan = ca_certificates(_cert_plan(certs, conf, local), make_input(()))
    assert plan.read(CA_BUNDLE) == expected
    # the subject-hash links of `openssl rehash`, name for name and target for target
    ours = {
        e.path.rsplit("/", 1)[1]: e.link_target
        for e in plan.children("etc/ssl/certs")
        if e.kind == "symlink"
    }
    assert {k for k in ours if k.endswith(".pem")} == {k for k in links if k.endswith(".pem")}
    hashed = {k: v for k, v in links.items() if not k.endswith(".pem")}
    assert len(hashed) > 100
    assert {k: v for k, v in ours.items() if not k.endswith(".pem")} == hashed
    pem = plan.get(f"etc/ssl/certs/{reordered[1].split('/')[1].removesuffix('.crt')}.pem")
    assert pem is not None
    assert pem.link_target == f"/usr/share/ca-certificates/{reordered[1]}"


def test_without_a_conf_every_certificate_is_trusted_like_the_postinst_does(
    tmp_path: Path,
) -> None:
    certs = _host_certs(30)
    plan = ca_certificates(_cert_plan(certs, None, {}), make_input(()))
    conf = plan.read("etc/ca-certificates.conf")
    assert conf is not None
    listed = [line for line in conf.decode().splitlines() if line and not line.startswith("#")]
    assert listed == sorted(certs)
    assert plan.read(CA_BUNDLE) == _update_ca_certificates(tmp_path, certs, conf, {})[0]
    assert plan.resolve("usr/lib/ssl/cert.pem") == CA_BUNDLE


def test_no_ca_certificates_package_means_no_bundle() -> None:
    plan = ca_certificates(Plan.empty(), make_input(()))
    assert len(plan) == 0


# ------------------------------------------------- nsswitch, localtime, tmp, os-release


def test_nsswitch_default_and_base_files_template() -> None:
    plain = nsswitch(Plan.empty(), make_input(()))
    assert b"hosts:          files dns" in (plain.read("etc/nsswitch.conf") or b"")
    template = Plan.empty().with_entries(
        file_entry("usr/share/base-files/nsswitch.conf", b"passwd: files\n")
    )
    assert nsswitch(template, make_input(())).read("etc/nsswitch.conf") == b"passwd: files\n"


def test_localtime_points_at_utc_only_when_tzdata_is_there() -> None:
    assert "etc/localtime" not in localtime(Plan.empty(), make_input(()))
    tz = Plan.empty().with_entries(file_entry("usr/share/zoneinfo/Etc/UTC", b"TZif2"))
    plan = localtime(tz, make_input(()))
    assert plan.entries["etc/localtime"].link_target == "/usr/share/zoneinfo/Etc/UTC"
    assert plan.read("etc/localtime") == b"TZif2"
    assert plan.read("etc/timezone") == b"Etc/UTC\n"


def test_tmp_is_sticky_and_world_writable() -> None:
    assert tmp(Plan.empty(), make_input(())).entries["tmp"].mode == 0o1777


TRIXIE_OS_RELEASE = b"""PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.2
ID=debian
"""


def test_os_release_from_base_files_identifies_debian_13(make_deb: MakeDeb) -> None:
    # trixie's base-files layout: the file in /usr/lib, a relative link in /etc
    base_files = make_deb(
        "base-files",
        {"usr/lib/os-release": TRIXIE_OS_RELEASE, "etc/os-release": "->../usr/lib/os-release"},
        version="13.8",
    )
    plan = apply_steps(plan_from_packages([base_files], arch="amd64"), make_input((base_files,)))
    fields = dict(
        line.split("=", 1) for line in (plan.read("etc/os-release") or b"").decode().splitlines()
    )
    assert (fields["ID"], fields["VERSION_ID"]) == ("debian", '"13"')
    only_usr = Plan.empty().with_entries(file_entry("usr/lib/os-release", TRIXIE_OS_RELEASE))
    assert os_release(only_usr, make_input(())).read("etc/os-release") == TRIXIE_OS_RELEASE


# -------------------------------------------------------------------------- spec paths


def test_spec_paths_make_links_dirs_and_files() -> None:
    python = Plan.empty().with_entries(file_entry("usr/bin/python3.13", b"ELF", mode=0o755))
    inp = make_input(
        (),
        paths=(
            PathSpec("/usr/bin/python3", "symlink", target="python3.13"),
            PathSpec("/var/cache/app", "dir", mode=0o750, uid=65532, gid=65532),
            PathSpec("/etc/app.conf", "file", mode=0o640, content=b"k=v\n"),
            PathSpec("/bin/py", "symlink", target="/usr/bin/python3"),
        ),
    )
    plan = spec_paths(python, inp)
    assert plan.read("usr/bin/python3") == b"ELF"
    assert plan.read("usr/bin/py") == b"ELF"  # /bin is merged into /usr/bin
    cache = plan.get("var/cache/app")
    assert cache is not None
    assert (cache.mode, cache.uid) == (0o750, 65532)
    assert plan.entries["etc/app.conf"].mode == 0o640


def test_a_spec_path_may_not_silently_replace_a_package_file() -> None:
    plan = plan_from_packages([pkg("p", member("usr/bin/x", content=b"pkg"))], arch="amd64")
    clash = make_input((), paths=(PathSpec("/usr/bin/x", "symlink", target="y"),))
    with pytest.raises(InputError, match="package p already ships /usr/bin/x"):
        spec_paths(plan, clash)
    same = plan_from_packages(
        [pkg("q", member("usr/bin/l", "symlink", link_target="x"))], arch="amd64"
    )
    kept = spec_paths(same, make_input((), paths=(PathSpec("/usr/bin/l", "symlink", target="x"),)))
    assert kept.entries["usr/bin/l"].package == "q"
    allowed = make_input((), paths=(PathSpec("/usr/bin/x", "symlink", target="y", replace=True),))
    assert spec_paths(plan, allowed).entries["usr/bin/x"].kind == "symlink"
    with pytest.raises(InputError, match="leaves the image root"):
        spec_paths(plan, make_input((), paths=(PathSpec("/../x", "dir"),)))


# ---------------------------------------------------------------------- dpkg database


def _dpkg_tree(plan: Plan, root: Path) -> Path:
    """Write the plan's /var/lib/dpkg to disk for the real dpkg-query."""
    admin = root / "var/lib/dpkg"
    for entry in plan.under("var/lib/dpkg"):
        target = root / entry.path
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif entry.kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(entry.read())
    return admin


def test_runtime_dpkg_metadata_is_the_distroless_status_d(make_deb: MakeDeb) -> None:
    p = make_deb("hello", {"usr/bin/hello": (b"x", 0o755)}, fields={"Depends": "libc6"})
    plan = dpkg_metadata(plan_from_packages([p], arch="amd64"), make_input((p,)))
    stanza = _lines(plan, "var/lib/dpkg/status.d/hello")
    assert stanza[:2] == ["Package: hello", "Status: install ok installed"]
    assert "Depends: libc6" in stanza
    assert plan.read("var/lib/dpkg/status.d/hello.md5sums") == p.md5sums
    assert b"usr/bin/hello" in p.md5sums
    assert "var/lib/dpkg/status" not in plan


def test_dev_dpkg_database_is_readable_by_the_real_dpkg_query(
    make_deb: MakeDeb, tmp_path: Path
) -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not installed")
    a = make_deb(
        "alpha",
        {"usr/bin/alpha": (b"a", 0o755), "etc/alpha.conf": b"k=1\n"},
        conffiles=("/etc/alpha.conf",),
    )
    b = make_deb(
        "beta", {"usr/share/beta/data": b"b"}, version="2:3.1-4", fields={"Multi-Arch": "same"}
    )
    inp = make_input((a, b), variant="dev")
    plan = dpkg_metadata(plan_from_packages([a, b], arch="amd64"), inp)
    admin = _dpkg_tree(plan, tmp_path)
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Package} ${Version} ${Status}\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert listing == [
        "alpha 1.0-1 install ok installed",
        "beta 2:3.1-4 install ok installed",
    ]
    files = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-L", "alpha"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert "/usr/bin/alpha" in files
    beta = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-L", "beta"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "/usr/share/beta/data" in beta.stdout.splitlines()
    assert "warning" not in beta.stderr
    assert "/etc/alpha.conf" in files
    conffiles = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Conffiles}", "alpha"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    md5 = hashlib.md5(b"k=1\n", usedforsecurity=False).hexdigest()
    assert f"/etc/alpha.conf {md5}" in conffiles


def test_image_json_records_the_build_facts_and_tests() -> None:
    test = ImageTest("runs", ("/usr/bin/hello",), stdout_pattern="hello")
    inp = make_input((pkg("hello"),), tests=(test,))
    facts = json.loads(image_json(Plan.empty(), inp).read("usr/lib/kiln/image.json") or b"")
    assert facts["name"] == "tiny"
    assert facts["lock_digest"] == "sha256:" + "0" * 64
    assert (facts["variant"], facts["arch"], facts["source_date_epoch"]) == (
        "runtime",
        "amd64",
        EPOCH,
    )
    assert facts["packages"] == [{"name": "hello", "version": "1.0", "architecture": "amd64"}]
    assert ImageTest.from_json(facts["tests"][0], "t") == test


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nope", "must be an object"),
        ({"name": "x", "command": "sh -c x"}, "list of strings"),
        ({"name": "x", "command": []}, "command is empty"),
        ({"command": ["/x"]}, "malformed test"),
        ({"name": "x", "command": ["/x"], "timeout": "soon"}, "malformed test"),
    ],
)
def test_malformed_stored_tests_are_refused(raw: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ImageTest.from_json(raw, "image.json tests[0]")
