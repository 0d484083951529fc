"""kiln's own signed apt repository (Packages, Sources, Release, InRelease).

Public interface: ``ensure_signing_key(home) -> SigningKey``,
``publish(directory, files, key=, date=, suite=, archs=) -> PublishedRepository``.
"""

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
    "PublishedRepository",
    "SigningKey",
    "add_to_pool",
    "ensure_signing_key",
    "publish",
]
