"""Upstream, non-Debian artifacts: npm registry tarballs, pinned, locked and verified.

Public interface:

* ``NpmIndex`` (``from_environment()``, ``lock(name, version) -> LockedNpmPackage``,
  ``tarball(locked) -> bytes``): the registry from npm's config, tarballs fetched once
  into kiln's cache and checked against the lock (sha512 integrity, sha256, size);
* ``registry_url(environ)``: the registry base URL as npm configures it;
* ``read_npm_tarball(data, name=, version=, source=)``: a tarball's members for
  assembly, refusing path traversal, escaping symlinks, links and special files;
* ``npm_package_input(locked, data)``: a verified tarball as assembly's
  ``NpmPackageInput``.
"""

from kiln.upstream.integrity import canonical_sri, sri_sha512, verify_integrity
from kiln.upstream.npm import NpmIndex, registry_url
from kiln.upstream.tarball import read_npm_tarball

__all__ = [
    "NpmIndex",
    "canonical_sri",
    "read_npm_tarball",
    "registry_url",
    "sri_sha512",
    "verify_integrity",
]
