"""The JVM's trust store (``/etc/ssl/certs/java/cacerts``), built from the CA bundle.

Debian's ``ca-certificates-java`` would build it in a maintainer script by running Java
(keytool) over ``/etc/ssl/certs/*.pem``; maintainer scripts never run, so kiln writes
the same store itself: one trusted-certificate entry per ``/etc/ssl/certs/<name>.pem``
link, aliased ``debian:<name>.pem`` (as the package names them), in the JKS format the
JDK reads (``sun.security.provider.JavaKeyStore``; Java 9+ opens JKS stores under the
default PKCS12 type, ``keystore.type.compat``), password ``changeit``. JKS is written
here because a PKCS12 trust store needs Oracle's trusted-key-usage attribute on each
certificate, which no PKCS#12 writer in the Python ecosystem sets.

Layout: magic ``FEEDFEED``, version 2, entry count; per entry tag 2 (trusted
certificate), alias and certificate type in Java's modified UTF-8, creation time in
milliseconds (SOURCE_DATE_EPOCH, so the store is reproducible), DER length and bytes;
then SHA-1 over the password as UTF-16BE, ``b"Mighty Aphrodite"`` and all of the above.
"""

from __future__ import annotations

import hashlib
import posixpath
import ssl
import struct

from kiln.assemble.fs import Plan, file_entry
from kiln.assemble.model import AssemblyInput

CACERTS = "etc/ssl/certs/java/cacerts"
PASSWORD = "changeit"  # noqa: S105 (not a secret: the JDK's and Debian's public store password)
_MAGIC = 0xFEEDFEED
_VERSION = 2
_TRUSTED_CERT = 2


def _utf(text: str) -> bytes:
    data = text.encode("utf-8")  # aliases and "X.509" are ASCII: modified UTF-8 is UTF-8
    return struct.pack(">H", len(data)) + data


def jks_trust_store(
    certs: list[tuple[str, bytes]], *, epoch: int, password: str = PASSWORD
) -> bytes:
    """A JKS keystore of trusted certificates ``(alias, DER)``, in the order given."""
    body = bytearray(struct.pack(">III", _MAGIC, _VERSION, len(certs)))
    for alias, der in certs:
        body += struct.pack(">I", _TRUSTED_CERT)
        body += _utf(alias.lower())  # keytool lowercases JKS aliases
        body += struct.pack(">q", epoch * 1000)
        body += _utf("X.509")
        body += struct.pack(">I", len(der)) + der
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(password.encode("utf-16-be"))
    digest.update(b"Mighty Aphrodite")
    digest.update(body)
    return bytes(body) + digest.digest()


def _wants_store(plan: Plan) -> bool:
    """A JVM in the image links its lib/security/cacerts to /etc/ssl/certs/java/cacerts."""
    return any(
        e.kind == "symlink"
        and e.path.endswith("/lib/security/cacerts")
        and posixpath.normpath(posixpath.join(posixpath.dirname(e.path), e.link_target or ""))
        .lstrip("/")
        .endswith(CACERTS)
        for e in plan.entries.values()
    )


def java_cacerts(plan: Plan, inp: AssemblyInput) -> Plan:
    """/etc/ssl/certs/java/cacerts from /etc/ssl/certs/*.pem, when a JVM expects it."""
    if CACERTS in plan or not _wants_store(plan):
        return plan
    certs = []
    for entry in sorted(plan.children("etc/ssl/certs"), key=lambda e: e.path.encode()):
        name = posixpath.basename(entry.path)
        if not name.endswith(".pem"):
            continue
        data = plan.read(entry.path)
        if not data:
            continue
        try:
            # the DER bytes only: cryptography warns on (and will refuse) a root Debian
            # ships with a non-positive serial, which keytool and Java accept
            der = ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            continue  # not one PEM certificate: update-ca-certificates would skip it too
        certs.append((f"debian:{name}", der))
    if not certs:
        return plan
    store = jks_trust_store(certs, epoch=inp.source_date_epoch)
    return plan.with_entries(file_entry(CACERTS, store))
