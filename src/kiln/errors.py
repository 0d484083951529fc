"""One error root for kiln, split by what the user can do about it.

The CLI catches ``KilnError`` once and maps it to an exit code (docs/architecture.md):
1 policy failure, 2 usage or input error, 3 environment error (70 is a bug: any other
exception, caught in kiln.cli.main). Bad remote content
(``RemoteContentError``) is never retried: it is an attack or corruption. A transport
failure (``TransportError``) may be retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """Where in an input a problem was found: file, optional line/column and field path."""

    file: str
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        if self.field:
            text += f": {self.field}"
        return text


@dataclass
class KilnError(Exception):
    """Root of every error kiln raises on purpose."""

    message: str
    location: Location | None = None
    hint: str | None = None
    details: list[str] = field(default_factory=list)

    exit_code = 2

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        return prefix + self.message

    def diagnostics(self) -> str:
        """The full human-readable report: where, what, details and what to do."""
        lines = [str(self)]
        lines.extend(f"  {d}" for d in self.details)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class InputError(KilnError):
    """A file or argument the user gave is malformed or inconsistent (exit 2)."""

    exit_code = 2


class PolicyError(KilnError):
    """A check the user asked for failed: findings, verification, stale lock (exit 1)."""

    exit_code = 1


class EnvironmentProblem(KilnError):  # noqa: N818 (EnvironmentError is a builtin)
    """Something kiln needs on this machine is missing or unusable (exit 3)."""

    exit_code = 3


class TransportError(EnvironmentProblem):
    """Could not reach or download from a remote service; retrying may help (exit 3)."""


class RemoteContentError(KilnError):
    """A remote answered, but its content is bad: wrong hash, bad signature, malformed.

    Never retried: this is an attack or corruption.
    """

    exit_code = 3


class SignatureError(RemoteContentError):
    """A signed index or artifact failed signature verification."""


class IntegrityError(RemoteContentError):
    """Content does not match the size or digest it was promised to have."""
