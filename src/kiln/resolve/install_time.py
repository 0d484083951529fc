"""Packages that only maintainer scripts need: kept out of runtime image variants.

A runtime variant never runs maintainer scripts: what they would do is done by kiln's
assembly steps (only ``-dev`` variants replay them, docs/dev-images.md). A package whose
only purpose in a closure is to serve ``preinst``/``postinst``/``prerm``/ ``postrm`` or
``config`` scripts is therefore dead weight in a runtime variant, and often a script for
an interpreter (sh, perl) a runtime variant does not ship. With
``drop_install_time_only=True`` the resolver cuts every dependency that one of these
names can satisfy (``debconf (>= 0.5) | debconf-2.0``, ``passwd | adduser``, ``systemd |
systemd-standalone-sysusers | systemd-sysusers``), and records the cut edge in the lock.

Each entry was checked against trixie's relations: who depends on it, and whether any
program outside maintainer scripts needs it at run time. Packages reached only through
these disappear with the edge and need no entry of their own: ``passwd``,
``base-passwd``, ``login.defs`` and PAM through ``adduser``; ``procps`` and the
``libtext-*-perl`` modules through ``ucf``. ``perl-base`` needs no entry: trixie's
``debconf`` relies on it being Essential and does not depend on it. The apt peer test
(``tests/resolve/test_apt_peer.py``) checks that the runtime closure is apt's closure
minus exactly what is reachable only through these edges. ``libdebconfclient0`` is not
one of them although only install-time programs link it: base-passwd's
``update-passwd`` does, and a runtime image that keeps base-passwd through another
package (mariadb, caddy, dnsmasq) would ship that program with a missing library,
failing the ELF closure test of every generated image. A user who wants one of them
in a runtime image lists it in the spec's ``packages``: a requested package is never
dropped.
"""

from __future__ import annotations

from types import MappingProxyType

INSTALL_TIME_ONLY: MappingProxyType[str, str] = MappingProxyType(
    {
        # Accounts: created from postinst (adduser, useradd via passwd, sysusers.d);
        # kiln writes /etc/passwd and /etc/group itself.
        "adduser": "creates system users and groups from postinst (kiln writes the accounts); "
        "pulls passwd, base-passwd and PAM only for that",
        "opensysusers": "a sysusers.d implementation, run from postinst to create accounts",
        "systemd-standalone-sysusers": "systemd-sysusers without systemd, run from postinst",
        "systemd-sysusers": "virtual sysusers.d implementation, run from postinst to create "
        "accounts (systemd | systemd-standalone-sysusers | systemd-sysusers)",
        # Configuration questions and files, asked and merged by maintainer scripts.
        "cdebconf": "the C debconf frontend, only asks install-time questions",
        "debconf": "asks and stores configuration questions for maintainer scripts "
        "(it relies on the Essential perl-base, so it pulls no perl)",
        "debconf-2.0": "virtual debconf implementation, for maintainer-script questions",
        "ucf": "merges configuration files on upgrade from postinst; pulls procps, "
        "sensible-utils and libtext-wrapi18n-perl only for that",
        # Service registration: containers run no init system.
        "init-system-helpers": "deb-systemd-helper, deb-systemd-invoke and update-rc.d, "
        "called only by maintainer scripts to register services",
        "lsb-base": "transitional: init-script helper functions (now in sysvinit-utils)",
        "opentmpfiles": "a tmpfiles.d implementation, run from postinst",
        "systemd-standalone-tmpfiles": "systemd-tmpfiles without systemd, run from postinst",
        "systemd-tmpfiles": "virtual tmpfiles.d implementation, run from postinst (kiln "
        "creates the image's paths itself)",
        "sysvinit-utils": "lsb init-functions, pidof and killall5 for SysV init scripts "
        "(Depends: sysvinit-utils | lsb-base)",
        # Packaging machinery.
        "dpkg": "the package manager; depended on for maintainer-script features and "
        "trigger support, never called by the installed programs",
        "install-info": "updates the info directory from maintainer scripts; kiln prunes info",
        "sensible-utils": "/bin/sh scripts choosing an editor or pager for interactive "
        "prompts (ucf, debconf); a runtime variant has no shell to run them",
        "usrmerge": "converts a root filesystem to merged-/usr at install time",
    }
)
