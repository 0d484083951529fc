"""The JVM trust store kiln writes instead of ca-certificates-java's maintainer script."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kiln.assemble.fs import Plan, file_entry, symlink_entry
from kiln.assemble.javacerts import CACERTS, java_cacerts, jks_trust_store
from kiln.assemble.model import AssemblyInput, ImageFacts
from kiln.assemble.steps import STEPS

JVM_LINK = "usr/lib/jvm/java-21-openjdk-amd64/lib/security/cacerts"


def _cert(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(when)
        .not_valid_after(when + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def _plan(*names: str, jvm: bool = True) -> Plan:
    entries = []
    for name in names:
        crt = f"usr/share/ca-certificates/mozilla/{name}.crt"
        entries.append(file_entry(crt, _cert(name).public_bytes(Encoding.PEM)))
        entries.append(symlink_entry(f"etc/ssl/certs/{name}.pem", "/" + crt))
    entries.append(file_entry("etc/ssl/certs/ca-certificates.crt", b"bundle"))
    if jvm:
        entries.append(symlink_entry(JVM_LINK, "/etc/ssl/certs/java/cacerts"))
    return Plan.empty().with_entries(*entries)


INP = AssemblyInput(ImageFacts("t"), "amd64", "runtime", (), 1_700_000_000)


def test_the_step_is_in_the_assembly_order_after_the_ca_bundle() -> None:
    names = [s.__name__ for s in STEPS]
    assert names.index("java_cacerts") > names.index("ca_certificates")


def test_a_jvm_gets_a_store_with_one_entry_per_pem_link() -> None:
    plan = _plan("Root_B", "Root_A")
    store = java_cacerts(plan, INP).read(CACERTS)
    assert store is not None
    assert store[:12] == bytes.fromhex("feedfeed0000000200000002")
    assert store.index(b"debian:root_a.pem") < store.index(b"debian:root_b.pem")
    body, mac = store[:-20], store[-20:]
    keyed = "changeit".encode("utf-16-be") + b"Mighty Aphrodite" + body
    expected = hashlib.sha1(keyed, usedforsecurity=False)
    assert mac == expected.digest()
    assert java_cacerts(plan, INP).read(CACERTS) == store  # reproducible


def test_no_jvm_no_store() -> None:
    plan = _plan("Root_A", jvm=False)
    assert java_cacerts(plan, INP) == plan


@pytest.mark.skipif(shutil.which("keytool") is None, reason="no JDK keytool on this machine")
def test_keytool_reads_the_store(tmp_path: Path) -> None:
    path = tmp_path / "cacerts"
    certs = [(f"debian:{n}.pem", _cert(n).public_bytes(Encoding.DER)) for n in ("One", "Two")]
    path.write_bytes(jks_trust_store(certs, epoch=1_700_000_000))
    listing = subprocess.run(
        ["keytool", "-list", "-keystore", str(path), "-storepass", "changeit"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Your keystore contains 2 entries" in listing
    assert "debian:one.pem, Nov 14, 2023, trustedCertEntry" in listing
