"""Hermetic package builds: a fresh build root, no network, a non-root uid, one tree writable.

The shape is SLSA Build L3's (https://slsa.dev/spec/v1.0/levels#build-l3): the build runs
in ``bwrap --unshare-all`` (no network: a private loopback only), on a fresh extraction
of the cached build root mounted read-only as ``/``, as uid/gid 1000, with only
``/build/reproducible-path`` (the path Debian's buildds use) and a private ``/tmp``
writable; a write anywhere else fails. The orchestrator (this module, outside the
sandbox) writes the hardening flags into the root's ``/etc/dpkg/buildflags.conf``
before the build and checks in the sandbox that they compile a program without a
warning (flags that warn silently flip a package's ``-Werror`` configure checks), adds
the recipe's patches to ``debian/patches`` after checking that
each applies, and writes the ``+kiln<N>`` changelog entry naming the CVEs with
python-debian. No key ever enters the sandbox.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from debian.changelog import Changelog, ChangelogParseError

from kiln.errors import EnvironmentProblem, InputError, PolicyError
from kiln.recipes.buildroot import extract_root
from kiln.recipes.fetch import FetchedSource
from kiln.recipes.load import LoadedRecipe
from kiln.sandbox.bwrap import DEFAULT_PATH, find_bwrap

BUILD_PATH = "/build/reproducible-path"
# What kiln gives every build beyond the root and the recipe (sandbox, environment, the
# flags it writes): bump it when that changes, so a cache of finished builds
# (kiln.pipeline.packagecache) does not hand out packages built the old way.
# 2: _FORTIFY_SOURCE in CPPFLAGS, not CFLAGS; the flags checked before the build.
BUILD_ENVIRONMENT = 2
BUILD_UID = 1000
_LOG_TAIL = 40
# Provided by the sandbox itself, never taken from the root.
_SANDBOX_OWNED = frozenset({"proc", "dev", "sys", "tmp", "build", "run", "lost+found"})


class BuildError(PolicyError):
    """The package did not build (the build's own failure, with its log)."""


class PatchError(InputError):
    """A recipe's patch does not apply to the Debian source it starts from."""


@dataclass(frozen=True)
class BuildOutput:
    """What a build produced and what the orchestrator observed about it."""

    source: str
    version: str
    debs: tuple[Path, ...]
    buildinfo: Path | None
    log: Path
    buildflags: str  # the buildflags.conf written into the root ("" for plain rebuilds)
    root_sha256: str
    duration: float
    patches: tuple[str, ...] = ()
    cves: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    source_digests: Mapping[str, str] = field(default_factory=dict)
    build_options: str = ""  # DEB_BUILD_OPTIONS of the build


def root_entries(root: Path) -> list[tuple[str, str | None]]:
    """Top-level entries of a root: (name, symlink target or None for a directory)."""
    entries: list[tuple[str, str | None]] = []
    for child in sorted(root.iterdir()):
        if child.name in _SANDBOX_OWNED:
            continue
        if child.is_symlink():
            entries.append((child.name, os.readlink(child)))
        elif child.is_dir():
            entries.append((child.name, None))
    return entries


def sandbox_argv(
    root: Path,
    entries: Sequence[tuple[str, str | None]],
    build_dir: Path,
    argv: Sequence[str],
    *,
    workdir: str = BUILD_PATH,
    env: Mapping[str, str] | None = None,
    uid: int = BUILD_UID,
    bwrap: str = "bwrap",
) -> list[str]:
    """The bubblewrap command line of a build step (pure, so tests can check it).

    Each top-level directory of ``root`` is bound read-only (symlinks such as
    ``/bin -> usr/bin`` recreated), the build directory read-write at
    ``/build/reproducible-path``, then ``/`` itself is remounted read-only: the build can
    write only its tree and its private ``/tmp``.
    """
    full_env = {
        "PATH": DEFAULT_PATH,
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": "kiln",
        "LOGNAME": "kiln",
        **(env or {}),
    }
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    for name, target in entries:
        if target is None:
            cmd += ["--ro-bind", str(root / name), f"/{name}"]
        else:
            cmd += ["--symlink", target, f"/{name}"]
    cmd += [
        "--bind", str(build_dir), BUILD_PATH,
        "--proc", "/proc", "--dev", "/dev",
        "--tmpfs", "/tmp",  # noqa: S108 - private to the sandbox
        "--remount-ro", "/",
        "--uid", str(uid), "--gid", str(uid),
        "--clearenv",
    ]  # fmt: skip
    for key, value in sorted(full_env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", workdir, "--", *argv]
    return cmd


def run_sandboxed(
    root: Path,
    build_dir: Path,
    argv: Sequence[str],
    *,
    log: Path,
    workdir: str = BUILD_PATH,
    env: Mapping[str, str] | None = None,
    timeout: float = 7200.0,
    label: str | None = None,
) -> int:
    """Run one build step in the sandbox, appending its output to ``log``; the exit code.

    ``label`` is what the log shows for the step instead of the whole command line.
    """
    cmd = sandbox_argv(
        root, root_entries(root), build_dir, argv, workdir=workdir, env=env, bwrap=find_bwrap()
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {label or ' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.write(f"kiln: killed after {timeout:.0f} s\n".encode())
            return -1


# Compile and link a program that is warning-free under any flags, the way autoconf's
# checks do ($CC -o conftest $CFLAGS $CPPFLAGS $LDFLAGS conftest.c), with the flags
# dpkg-buildflags gives inside the build root: by default and with hardening=+all.
# Any diagnostic means the flags themselves warn, so every configure check compiled
# with -Werror (libarchive's visibility test, for one) would answer "no" here while
# it answers "yes" on Debian's buildds.
_FLAGS_CHECK = r"""
set -u
cd /tmp
printf 'int main(void) { return 0; }\n' > kiln-flags.c
cp kiln-flags.c kiln-flags.cc
command -v cc >/dev/null || { echo "kiln: no C compiler (cc) in the build root"; exit 1; }
status=0
try() {  # try MAINT-OPTIONS COMPILER FLAGS SOURCE
  out=$($2 -o kiln-flags $3 $4 2>&1) && [ -z "$out" ] && return 0
  printf 'kiln: DEB_BUILD_MAINT_OPTIONS="%s": %s -o kiln-flags %s %s\n%s\n' \
    "$1" "$2" "$3" "$4" "$out"
  status=1
}
for maint in "" "hardening=+all"; do
  flags=$(DEB_BUILD_MAINT_OPTIONS="$maint" dpkg-buildflags --export=sh) || exit 1
  eval "$flags"
  try "$maint" cc "$CFLAGS $CPPFLAGS $LDFLAGS" kiln-flags.c
  if command -v c++ >/dev/null; then
    try "$maint" c++ "$CXXFLAGS $CPPFLAGS $LDFLAGS" kiln-flags.cc
  fi
done
exit $status
"""


def check_build_flags(
    root: Path, build_dir: Path, *, log: Path, env: Mapping[str, str] | None = None
) -> None:
    """Refuse build flags that make a warning-free program warn (``BuildError``).

    Run in the sandbox, on the root as the build will see it, before a build whose
    flags kiln changed (``/etc/dpkg/buildflags.conf``): flags that warn do not fail
    a build, they silently change what its configure finds.
    """
    code = run_sandboxed(
        root,
        build_dir,
        ["sh", "-c", _FLAGS_CHECK],
        log=log,
        workdir="/tmp",  # noqa: S108 - the sandbox's private tmpfs
        env=env,
        timeout=300,
        label="kiln: checking that the build flags compile a program without a warning",
    )
    if code != 0:
        tail = log_tail(log, 12)
        raise BuildError(
            "the build flags make the compiler warn on a warning-free program, so "
            "configure checks compiled with -Werror would answer differently than on "
            "Debian's buildds",
            details=tail,
            hint=f"check the recipe's hardening flags (extra-cflags, extra-ldflags); "
            f"the full log is {log}",
        )


def log_tail(log: Path, lines: int = _LOG_TAIL) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def tree_name(fetched: FetchedSource) -> str:
    """``<source>-<upstream version>``, the directory name sbuild uses."""
    version = fetched.package.version.split(":", 1)[-1]
    upstream = version.rsplit("-", 1)[0] if "-" in version else version
    return f"{fetched.package.name}-{upstream}"


def unpack_source(fetched: FetchedSource, root: Path, build_dir: Path, *, log: Path) -> Path:
    """Copy the verified files into the build dir and ``dpkg-source -x`` them in the sandbox."""
    for item in fetched.package.files:
        shutil.copyfile(fetched.directory / item.name, build_dir / item.name)
    if fetched.dsc_synthesised:
        shutil.copyfile(fetched.dsc, build_dir / fetched.dsc.name)
    name = tree_name(fetched)
    code = run_sandboxed(
        root, build_dir, ["dpkg-source", "--no-check", "-x", fetched.dsc.name, name], log=log
    )
    tree = build_dir / name
    if code != 0 or not tree.is_dir():
        raise BuildError(
            f"dpkg-source could not unpack {fetched.dsc.name}",
            details=log_tail(log),
            hint=f"the full log is {log}",
        )
    return tree


def _safe_dir(tree: Path, relative: str) -> Path:
    """``tree/relative`` as a real directory inside ``tree`` (a hostile source may symlink)."""
    current = tree
    for part in relative.split("/"):
        current = current / part
        if current.is_symlink():
            raise BuildError(f"{relative} in the source tree is a symlink; refusing to write there")
    current.mkdir(parents=True, exist_ok=True)
    return current


def apply_recipe(tree: Path, loaded: LoadedRecipe, *, codename: str) -> None:
    """Add the recipe's patches to ``debian/patches`` and write the ``+kiln<N>`` entry."""
    fmt_file = tree / "debian" / "source" / "format"
    fmt = fmt_file.read_text().strip() if fmt_file.is_file() else "1.0"
    if loaded.patches and fmt != "3.0 (quilt)":
        raise PatchError(
            f"{loaded.recipe.source} uses source format {fmt!r}; kiln adds patches through "
            "debian/patches of the '3.0 (quilt)' format only",
            loaded.locate(("patches",)),
        )
    if loaded.patches:
        patches_dir = _safe_dir(tree, "debian/patches")
        series = patches_dir / "series"
        if series.is_symlink():
            raise BuildError("debian/patches/series is a symlink; refusing to write there")
        for patch in loaded.patches:
            _check_applies(tree, patch.path, patch.name, loaded)
            target = patches_dir / patch.name
            if target.exists() or target.is_symlink():
                raise PatchError(
                    f"debian/patches/{patch.name} already exists in {loaded.recipe.source}",
                    loaded.locate(("patches",)),
                    hint="rename the recipe's patch",
                )
            target.write_text(patch.text, encoding="utf-8")
            _apply(tree, patch.path, patch.name)
            (tree / ".pc").mkdir(exist_ok=True)
            with (tree / ".pc" / "applied-patches").open("a") as applied:
                applied.write(patch.name + "\n")
        existing = series.read_text() if series.is_file() else ""
        if existing and not existing.endswith("\n"):
            existing += "\n"
        series.write_text(existing + "".join(p.name + "\n" for p in loaded.patches))
    write_changelog_entry(tree, loaded, codename=codename)
    mark_binary_packages(tree, loaded)


def kiln_fields(loaded: LoadedRecipe) -> dict[str, str]:
    """The control fields every binary of a recipe build carries (SBOMs read them back)."""
    fields = {"Kiln-Recipe": f"{loaded.recipe.source} sha256:{loaded.sha256}"}
    if loaded.patches:
        fields["Kiln-Patches"] = " ".join(p.name for p in loaded.patches)
    if loaded.cves:
        fields["Kiln-Fixes"] = " ".join(loaded.cves)
    return fields


def mark_binary_packages(tree: Path, loaded: LoadedRecipe) -> None:
    """Add ``XB-Kiln-*`` fields to each binary stanza of ``debian/control``.

    dpkg-gencontrol copies ``XB-`` fields into the binary packages' control files (Debian
    Policy §5.7), so the installed package says which recipe, patches and CVEs made it;
    the image's dpkg database then carries that into kiln's SBOMs.
    """
    path = tree / "debian" / "control"
    if path.is_symlink() or not path.is_file():
        raise BuildError("debian/control is missing or a symlink")
    added = "".join(f"XB-{k}: {v}\n" for k, v in kiln_fields(loaded).items())
    out = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        out.append(line)
        if line.lower().startswith("package:"):
            out.append(added if line.endswith("\n") else "\n" + added)
    path.write_text("".join(out), encoding="utf-8")


def _check_applies(tree: Path, patch: Path, name: str, loaded: LoadedRecipe) -> None:
    proc = subprocess.run(
        ["patch", "--dry-run", "--batch", "--forward", "-F", "0", "-p1", "-t", "-d", str(tree),
         "-i", str(patch)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()
        index = next(i for i, p in enumerate(loaded.patches) if p.name == name)
        raise PatchError(
            f"patch {name} does not apply to {loaded.recipe.source} {loaded.recipe.version}",
            loaded.locate(("patches", index, "path")),
            details=output[-10:],
            hint="rebase the patch on the Debian source (dpkg-source -x, then quilt refresh)",
        )


def _apply(tree: Path, patch: Path, name: str) -> None:
    # As dpkg-source applies quilt patches: no fuzz, backups under .pc/<name>/.
    proc = subprocess.run(
        ["patch", "--batch", "--forward", "-F", "0", "-p1", "-t", "-s", "-E", "-d", str(tree),
         "-b", "-B", f".pc/{name}/", "-i", str(patch)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise PatchError(f"patch {name} failed: {proc.stdout.decode()[-500:]}")


def write_changelog_entry(tree: Path, loaded: LoadedRecipe, *, codename: str) -> str:
    """Prepend the ``+kiln<N>`` entry (dated like Debian's top entry, for reproducibility)."""
    path = tree / "debian" / "changelog"
    if path.is_symlink() or not path.is_file():
        raise BuildError("debian/changelog is missing or a symlink")
    try:
        changelog = Changelog(path.read_text(encoding="utf-8"), strict=True)
    except (ChangelogParseError, UnicodeDecodeError) as exc:
        raise BuildError(f"debian/changelog cannot be parsed: {exc}") from exc
    top = changelog[0]
    recipe = loaded.recipe
    if str(top.version) != recipe.version:
        raise BuildError(
            f"debian/changelog starts at {top.version}, not the recipe's {recipe.version}"
        )
    changes = [
        "",
        f"  * Rebuild by kiln from Debian {recipe.source} {recipe.version} "
        f"(recipe sha256 {loaded.sha256[:16]}).",
    ]
    for patch in loaded.patches:
        cves = f" ({', '.join(patch.header.cves)})" if patch.header.cves else ""
        changes.append(f"  * Add {patch.name}: {patch.header.summary}{cves}.")
    if loaded.cves:
        changes.append(f"  * Security fixes: {', '.join(loaded.cves)}.")
    if recipe.hardening:
        h = recipe.hardening
        flags = [f"-D_FORTIFY_SOURCE={h.fortify_source}"] + (["-Wl,-z,now"] if h.bindnow else [])
        changes.append(f"  * Hardening: {' '.join(flags + list(h.extra_cflags))}.")
    changes += [f"  * {line}" for line in recipe.changes]
    changes.append("")
    changelog.new_block(
        package=recipe.source,
        version=recipe.kiln_version,
        distributions=codename,
        urgency="medium",
        changes=changes,
        author=recipe.maintainer,
        date=top.date,
    )
    text = str(changelog)
    path.write_text(text, encoding="utf-8")
    return text


def build_environment(
    *,
    jobs: int,
    profiles: Sequence[str] = (),
    nocheck: bool = False,
    options: Sequence[str] = (),
) -> dict[str, str]:
    """The variables a build step gets beyond the sandbox's own (PATH, HOME, locale).

    ``DEB_BUILD_OPTIONS`` is ``parallel=<jobs>``, ``nocheck`` when the tests are skipped
    (``nocheck`` or the nocheck profile), then a recipe's ``build-options`` (``check``
    for a package whose test suite is opt-in).
    """
    skip_tests = nocheck or "nocheck" in profiles
    words = [f"parallel={jobs}"] + (["nocheck"] if skip_tests else []) + list(options)
    env = {
        "DEB_BUILD_OPTIONS": " ".join(words),
        # uid 0 is not mapped in the sandbox: a real chown fails with EINVAL, which
        # fakeroot (Rules-Requires-Root: binary-targets) only tolerates when told.
        "FAKEROOTDONTTRYCHOWN": "1",
    }
    if profiles:
        env["DEB_BUILD_PROFILES"] = " ".join(profiles)
    return env


def build_in_sandbox(
    fetched: FetchedSource,
    *,
    root_tarball: Path,
    root_sha256: str,
    out_dir: Path,
    loaded: LoadedRecipe | None = None,
    codename: str = "trixie",
    jobs: int = 2,
    work_root: Path | None = None,
    root_dir: Path | None = None,
    timeout: float = 7200.0,
    nocheck: bool = False,
    build_profiles: tuple[str, ...] = (),
) -> BuildOutput:
    """Build binary packages of ``fetched`` (with ``loaded``'s patches when given).

    ``root_dir`` (tests) uses an existing directory as the read-only root instead of a
    fresh extraction of ``root_tarball``. ``nocheck`` skips the test suite without
    a build profile (DEB_BUILD_OPTIONS only). ``build_profiles`` (DEB_BUILD_PROFILES)
    apply to a plain rebuild; a recipe build takes the recipe's profiles.
    """
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kiln-build-", dir=work_root) as tmp_name:
        tmp = Path(tmp_name)
        log = out_dir / f"{fetched.package.name}.build.log"
        log.unlink(missing_ok=True)
        root = root_dir if root_dir is not None else tmp / "root"
        buildflags = ""
        if root_dir is None:
            extract_root(root_tarball, root)
            if loaded is not None:
                buildflags = loaded.recipe.hardening.buildflags_conf()
                conf = root / "etc" / "dpkg" / "buildflags.conf"
                if conf.is_symlink():
                    raise EnvironmentProblem(f"{conf} is a symlink in the build root")
                conf.write_text(buildflags)
        build_dir = tmp / "build"
        build_dir.mkdir(mode=0o755)
        profiles = loaded.recipe.profile_names if loaded is not None else build_profiles
        env = build_environment(
            jobs=jobs,
            profiles=profiles,
            nocheck=nocheck,
            options=loaded.recipe.build_options if loaded is not None else (),
        )
        if buildflags:
            check_build_flags(root, build_dir, log=log, env=env)
        tree = unpack_source(fetched, root, build_dir, log=log)
        if loaded is not None:
            apply_recipe(tree, loaded, codename=codename)
        code = run_sandboxed(
            root,
            build_dir,
            ["dpkg-buildpackage", "-us", "-uc", "-b"],
            log=log,
            workdir=f"{BUILD_PATH}/{tree.name}",
            env=env,
            timeout=timeout,
        )
        if code != 0:
            raise BuildError(
                f"{fetched.package.name} failed to build (exit {code})",
                details=log_tail(log),
                hint=f"the full log is {log}",
            )
        debs = []
        buildinfo = None
        for produced in sorted(build_dir.iterdir()):
            if produced.suffix in (".deb", ".udeb", ".buildinfo", ".changes"):
                target = out_dir / produced.name
                shutil.move(str(produced), target)
                if produced.suffix in (".deb", ".udeb"):
                    debs.append(target)
                elif produced.suffix == ".buildinfo":
                    buildinfo = target
        if not debs:
            raise BuildError(
                f"{fetched.package.name} built but produced no .deb", details=log_tail(log)
            )
    version = loaded.recipe.kiln_version if loaded is not None else fetched.package.version
    return BuildOutput(
        source=fetched.package.name,
        version=version,
        debs=tuple(debs),
        buildinfo=buildinfo,
        log=log,
        buildflags=buildflags,
        root_sha256=root_sha256,
        duration=time.monotonic() - started,
        patches=tuple(p.name for p in loaded.patches) if loaded else (),
        cves=loaded.cves if loaded else (),
        profiles=profiles,
        source_digests=dict(fetched.digests),
        build_options=env["DEB_BUILD_OPTIONS"],
    )
