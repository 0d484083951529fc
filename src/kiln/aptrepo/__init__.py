"""kiln's own signed apt repository (Packages, Sources, Release, InRelease).

Public interface: ``ensure_signing_key(home) -> SigningKey``,
``publish(directory, files, key=, date=, suite=, archs=) -> PublishedRepository``;
``overlay_snapshot(snapshot, base_url, keyring=, ...)`` adds kiln's repository to a
Debian ``RepoSnapshot`` so the resolver prefers kiln's rebuilds when they are not older
(``PreferKiln``) and locks record the packages that came from kiln.
"""

from kiln.aptrepo.overlay import PreferKiln, load_kiln_universe, overlay_snapshot
from kiln.aptrepo.publish import (
    KEYRING_NAME,
    PublishedRepository,
    SigningKey,
    add_to_pool,
    ensure_signing_key,
    publish,
)

__all__ = [
    "KEYRING_NAME",
    "PreferKiln",
    "PublishedRepository",
    "SigningKey",
    "add_to_pool",
    "ensure_signing_key",
    "load_kiln_universe",
    "overlay_snapshot",
    "publish",
]
