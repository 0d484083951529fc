"""kiln's own signed apt repository (Packages, Sources, Release, InRelease).

Public interface: ``ensure_signing_key(home) -> SigningKey``,
``publish(directory, files, key=, date=, suite=, archs=) -> PublishedRepository``;
``overlay_snapshot(snapshot, base_url, keyring=, ...)`` adds kiln's repository to a
Debian ``RepoSnapshot`` so the resolver prefers kiln's rebuilds when they are not older
(``PreferKiln``) and locks record the packages that came from kiln;
``check_repository(directory) -> ServedRepository`` and ``serving(repository, host, port)``
serve a published repository read-only over HTTP (``kiln serve``).
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
