"""The suite's private image store, driven through the real tools: buildah, podman, skopeo.

Everything lives under one cache directory (``--root``/``--runroot``, the vfs driver), so
the suite never touches the machine's default store. Builds use chroot isolation with
the host network (RUN steps reach PyPI and npm) and the host CA bundle mounted
read-only; containers run under runc with slirp4netns and publish one loopback port.
Every command's output is kept, so a failure shows its log tail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import EnvironmentProblem

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = ("buildah", "podman", "skopeo", "mmdebstrap", "runc", "slirp4netns")


@dataclass(frozen=True)
class CommandResult:
    """What a command did: its argv, exit code and combined output."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> CommandResult:
    """Run ``argv``, capture stdout+stderr (also into ``log``), never raise on exit status."""
    try:
        proc = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            env={**os.environ, **env} if env else None,
            check=False,
        )
        result = CommandResult(tuple(argv), proc.returncode, proc.stdout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
        result = CommandResult(tuple(argv), -1, f"{out}\n[timed out after {timeout:.0f}s]")
    except FileNotFoundError as exc:
        raise EnvironmentProblem(
            f"{argv[0]} is not installed", hint="make setup installs the suite's tools"
        ) from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(argv)}\n{result.output}\n[exit {result.returncode}]\n")
    return result


def check_tools(tools: Sequence[str] = TOOLS) -> None:
    """Refuse to start when a tool the suite drives is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise EnvironmentProblem(
            f"the compat suite needs {', '.join(missing)}",
            hint="apt-get install -y " + " ".join(missing) + " (or make setup)",
        )


@dataclass(frozen=True)
class Store:
    """A private containers-storage (vfs) under ``root``/``runroot``."""

    root: Path
    runroot: Path

    @classmethod
    def under(cls, directory: Path) -> Store:
        return cls(directory / "storage", directory / "run")

    @property
    def _global(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    @property
    def transport(self) -> str:
        """skopeo's name for this store: ``containers-storage:[vfs@root+runroot]``."""
        return f"containers-storage:[vfs@{self.root}+{self.runroot}]"

    def podman(self, *args: str) -> list[str]:
        return ["podman", *self._global, *args]

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", *self._global, *args]

    def exists(self, ref: str) -> bool:
        return run(self.podman("image", "exists", ref), timeout=60).ok

    def inspect(self, ref: str) -> dict[str, object] | None:
        """``podman image inspect`` of ``ref``, or None when it is not in the store."""
        result = run(self.podman("image", "inspect", ref), timeout=60)
        if not result.ok:
            return None
        try:
            data = json.loads(result.output)
        except json.JSONDecodeError:
            return None
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None

    def label(self, ref: str, name: str) -> str | None:
        info = self.inspect(ref)
        if info is None:
            return None
        labels = info.get("Labels") or {}
        value = labels.get(name) if isinstance(labels, dict) else None
        return value if isinstance(value, str) else None

    def size(self, ref: str) -> int | None:
        info = self.inspect(ref)
        size = info.get("Size") if info else None
        return size if isinstance(size, int) else None

    def tag(self, ref: str, *names: str) -> CommandResult:
        return run(self.podman("tag", ref, *names), timeout=120)

    def build_argv(
        self,
        context: Path,
        dockerfile: Path,
        tag: str,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        # --layers=false: with vfs every intermediate layer is a full copy of the rootfs;
        # one commit per stage is several times faster (the suite caches whole builds).
        argv = self.buildah(
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            "--layers=false",
            "--format",
            "oci",
            "-f",
            str(dockerfile),
            "-t",
            tag,
        )
        for name, value in (labels or {}).items():
            argv += ["--label", f"{name}={value}"]
        if HOST_CA_BUNDLE.is_file():
            argv += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        return [*argv, str(context)]

    def run_argv(self, ref: str, name: str, *, publish: tuple[int, int] | None = None) -> list[str]:
        argv = self.podman(
            "run",
            "--runtime",
            "runc",
            "--name",
            name,
            "--network",
            "slirp4netns:port_handler=slirp4netns",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        )
        if publish is not None:
            host, container = publish
            argv += ["-d", "-p", f"127.0.0.1:{host}:{container}"]
        return [*argv, ref]

    def remove_container(self, name: str) -> None:
        run(self.podman("rm", "--force", "--time", "2", name), timeout=60)

    def logs(self, name: str) -> CommandResult:
        return run(self.podman("logs", name), timeout=60)

    def state(self, name: str) -> tuple[str, int | None]:
        """(status, exit code) of a container: ``running``, ``exited``..."""
        result = run(
            self.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name),
            timeout=60,
        )
        status, _, code = result.output.strip().partition(" ")
        return status, int(code) if code.strip().lstrip("-").isdigit() else None
