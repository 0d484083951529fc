"""The Debian releases kiln builds on, and how to name them."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.errors import InputError

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Distro:
    """A supported distro: its id as written in specs and its archive names."""

    id: str  # debian-13
    version: str  # 13
    codename: str  # trixie
    keyring: str = DEFAULT_KEYRING

    @property
    def suites(self) -> tuple[str, str, str]:
        """Main, updates and security suites, lowest precedence first."""
        return (self.codename, f"{self.codename}-updates", f"{self.codename}-security")


DISTROS: dict[str, Distro] = {
    "debian-13": Distro("debian-13", "13", "trixie"),
    "debian-12": Distro("debian-12", "12", "bookworm"),
}


def get_distro(distro_id: str) -> Distro:
    try:
        return DISTROS[distro_id]
    except KeyError:
        known = ", ".join(sorted(DISTROS))
        raise InputError(f"unknown distro {distro_id!r} (kiln supports {known})") from None
