"""Packages that only maintainer scripts need: kept out of runtime image variants.

kiln never runs maintainer scripts (ARCHITECTURE.md, "Image conventions"): what they
would do is done by kiln itself. A package whose only purpose in a closure is to serve
``preinst``/``postinst``/``prerm``/``postrm`` or ``config`` scripts is therefore dead
weight in a runtime variant, and often a shell-script interpreter kiln promises not to
ship. The resolver cuts every dependency edge to a name listed here when asked to
(``drop_install_time_only=True``), and records the cut edge in the lock.

Each entry was checked against trixie's relations: who depends on it, and whether any
program outside maintainer scripts needs it at run time. Packages only reached through
these (``perl-base`` through ``debconf``, ``passwd``/``login.defs`` through ``adduser``,
``libdebconfclient0`` through ``base-passwd``'s scripts...) disappear with the edge and
need no entry of their own. A user who wants one of them in a runtime image lists it in
the spec's ``packages``: a requested package is never dropped.
"""

from __future__ import annotations

from types import MappingProxyType

INSTALL_TIME_ONLY: MappingProxyType[str, str] = MappingProxyType(
    {
        "adduser": "creates system users and groups from postinst; kiln writes the accounts",
        "cdebconf": "alternative debconf frontend, only used to ask install-time questions",
        "debconf": "asks and stores configuration questions for maintainer scripts",
        "debconf-2.0": "virtual name of a debconf implementation (maintainer-script prompts)",
        "dpkg": "package manager; only pre-depended on to run maintainer scripts safely",
        "init-system-helpers": "deb-systemd-helper/update-rc.d, called only by maintainer "
        "scripts to register services; containers run no init system",
        "install-info": "updates the info directory from maintainer scripts; info is pruned",
        "libdebconfclient0": "cdebconf client library, used by base-passwd's postinst only",
        "lsb-base": "init-script helper functions, only for SysV init scripts",
        "sensible-utils": "sensible-editor/pager for interactive maintainer-script prompts",
        "sysvinit-utils": "service/start-stop-daemon helpers for init scripts run from postinst",
        "ucf": "merges configuration files during upgrades, from maintainer scripts",
        "usrmerge": "converts a root filesystem to merged-/usr at install time",
    }
)
