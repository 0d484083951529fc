"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .overlay import PreferKiln, load_kiln_universe, overlay_snapshot
from .publish import (
    KEYRING_NAME,
    PublishedRepository,
    SigningKey,
    add_to_pool,
    ensure_signing_key,
    publish,
)
from .serve import ServedRepository, check_repository, serving

__all__ = [
    "KEYRING_NAME",
    "PreferKiln",
    "PublishedRepository",
    "ServedRepository",
    "SigningKey",
    "add_to_pool",
    "check_repository",
    "ensure_signing_key",
    "load_kiln_universe",
    "overlay_snapshot",
    "publish",
    "serving",
]
