"""OpenSSL's subject-name hash, for the ``<hash>.<n>`` links of a CA directory.

``update-ca-certificates`` ends with ``openssl rehash /etc/ssl/certs``, which links each
certificate as ``<X509_NAME_hash>.<n>`` so that programs using a CA *directory*
(``SSL_CERT_DIR``, ``CApath``) find it. The hash is the first four bytes (little endian)
of SHA-1 over OpenSSL's canonical subject encoding (``x509_name_canon`` in
crypto/x509/x_name.c): every string value converted to a UTF8String, ASCII lowercased,
leading/trailing whitespace removed and inner runs collapsed to one space; the DER of
each RDN's SET concatenated without the outer SEQUENCE.
"""

from __future__ import annotations

import hashlib
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes

_SPACE = b" \t\n\v\f\r"


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        rest = arc >> 7
        chunk = [arc & 0x7F]
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _canon(value: str) -> bytes:
    data = value.encode("utf-8").strip(_SPACE)
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte >= 0x80:
            out.append(byte)
            i += 1
        elif byte in _SPACE:
            out.append(0x20)
            while i < len(data) and data[i] in _SPACE:
                i += 1
        else:
            out.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
            i += 1
    return bytes(out)


def subject_hash(pem: bytes) -> str | None:
    """``openssl x509 -hash`` of a PEM certificate, or None if it cannot be computed."""
    try:
        with warnings.catch_warnings():
            # old roots with non-positive serials still load (with a deprecation warning)
            warnings.simplefilter("ignore")
            cert = x509.load_pem_x509_certificate(pem)
        rdns = cert.subject.rdns
    except ValueError:
        return None
    canon = bytearray()
    for rdn in rdns:
        entries = []
        for attr in rdn:
            if not isinstance(attr.value, str):
                return None  # a non-string attribute: OpenSSL copies it as is; not modelled
            value = _tlv(0x0C, _canon(attr.value))  # UTF8String
            entries.append(_tlv(0x30, _oid(attr.oid.dotted_string) + value))
        canon += _tlv(0x31, b"".join(sorted(entries)))
    digest = hashlib.sha1(bytes(canon), usedforsecurity=False).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def fingerprint(pem: bytes) -> bytes | None:
    """SHA-256 of the certificate's DER (to skip duplicates as ``openssl rehash`` does)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    return cert.fingerprint(hashes.SHA256())
