"""Build the "before" images: stand-ins for official images, made with mmdebstrap.

Each stand-in of ``compat/standins.yaml`` is bootstrapped from Debian 13 with mmdebstrap
(mirrors from the host's apt sources or kiln's config, ``kiln.debian.sources``), shaped
by its ``customize`` script, imported into the suite's store with ``podman import`` and
tagged under every official name it stands in for. The image carries a label with the
sha256 of its inputs (the declaration, the mirrors, the distro); a warm run whose key is
unchanged reuses it without touching the network.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kiln.compat.containers import CommandResult, Store, run
from kiln.compat.model import StandinSpec
from kiln.debian.distro import Distro
from kiln.debian.sources import Mirrors

KEY_LABEL = "io.kiln.compat.standin-key"
_FORMAT = 2  # bump when the way stand-ins are built changes
BOOTSTRAP_TIMEOUT = 1200.0


@dataclass(frozen=True)
class StandinBuild:
    """The outcome of ensuring one stand-in is in the store."""

    name: str
    refs: tuple[str, ...]
    key: str
    cached: bool
    ok: bool
    seconds: float
    log_tail: str = ""


def standin_key(spec: StandinSpec, distro: Distro, mirrors: Mirrors) -> str:
    """sha256 of everything a stand-in is built from."""
    material = {
        "format": _FORMAT,
        "spec": spec.model_dump(mode="json", by_alias=True),
        "distro": distro.codename,
        "mirrors": [mirrors.debian, mirrors.security],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def local_name(ref: str) -> str:
    """The store's name for an official short name: ``localhost/<repository>:<tag>``."""
    return ref if ref.startswith("localhost/") else f"localhost/{ref}"


def mmdebstrap_argv(
    spec: StandinSpec, distro: Distro, mirrors: Mirrors, hook: Path, output: Path
) -> list[str]:
    """The mmdebstrap command line for ``spec`` (one-line apt sources for the 3 suites)."""
    main, updates, security = distro.suites
    return [
        "mmdebstrap",
        f"--variant={spec.variant}",
        f"--include={','.join(spec.packages)}",
        "--format=tar",
        f'{_hook_option(spec)}=sh {shlex.quote(str(hook))} "$1"',
        distro.codename,
        str(output),
        f"deb {mirrors.debian} {main} main",
        f"deb {mirrors.debian} {updates} main",
        f"deb {mirrors.security} {security} main",
    ]


def _hook_option(spec: StandinSpec) -> str:
    # mmdebstrap runs no customize hook for the extract variant (nothing is installed);
    # its extract hook runs once the packages are unpacked, with the .debs still cached
    return "--extract-hook" if spec.variant == "extract" else "--customize-hook"


def import_changes(spec: StandinSpec, key: str) -> list[str]:
    """``podman import --change`` instructions giving the stand-in its image config."""
    config = spec.config
    changes = [f"LABEL {KEY_LABEL}={key}"]
    changes += [f"ENV {name}={value}" for name, value in config.env.items()]
    if config.entrypoint is not None:
        changes.append(f"ENTRYPOINT {json.dumps(list(config.entrypoint))}")
    if config.cmd is not None:
        changes.append(f"CMD {json.dumps(list(config.cmd))}")
    if config.user is not None:
        changes.append(f"USER {config.user}")
    if config.workdir is not None:
        changes.append(f"WORKDIR {config.workdir}")
    changes += [f"EXPOSE {port}" for port in config.expose]
    if config.stop_signal is not None:
        changes.append(f"STOPSIGNAL {config.stop_signal}")
    return changes


def ensure_standin(
    spec: StandinSpec,
    *,
    store: Store,
    distro: Distro,
    mirrors: Mirrors,
    downloads: Path,
    log: Path,
    rebuild: bool = False,
) -> StandinBuild:
    """Make every ref of ``spec`` name an up-to-date stand-in in ``store``."""
    start = time.monotonic()
    key = standin_key(spec, distro, mirrors)
    refs = tuple(local_name(r) for r in spec.refs)
    if not rebuild and all(store.label(r, KEY_LABEL) == key for r in refs):
        return StandinBuild(spec.name, refs, key, True, True, time.monotonic() - start)
    with tempfile.TemporaryDirectory(prefix=f"compat-{spec.name}-") as tmp:
        hook = Path(tmp) / "customize.sh"
        hook.write_text("set -eu\n" + spec.customize, encoding="utf-8")
        tarball = Path(tmp) / "rootfs.tar"
        result = run(
            mmdebstrap_argv(spec, distro, mirrors, hook, tarball),
            timeout=BOOTSTRAP_TIMEOUT,
            env={"COMPAT_DOWNLOADS": str(downloads)},
            log=log,
        )
        if result.ok:
            argv = store.podman("import")
            for change in import_changes(spec, key):
                argv += ["--change", change]
            result = run([*argv, str(tarball), refs[0]], timeout=600, log=log)
    if result.ok and len(refs) > 1:
        result = _tag_all(store, refs, log)
    return StandinBuild(
        spec.name,
        refs,
        key,
        False,
        result.ok,
        time.monotonic() - start,
        "" if result.ok else result.tail(),
    )


def _tag_all(store: Store, refs: tuple[str, ...], log: Path) -> CommandResult:
    return run(store.podman("tag", refs[0], *refs[1:]), timeout=120, log=log)
