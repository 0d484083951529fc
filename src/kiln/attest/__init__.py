"""Attestations: in-toto statements, SLSA provenance, DSSE, Sigstore bundles, signers, policy.

Public interface:

* statements — ``Statement``, ``Subject``, ``make_statement``, ``parse_statement``;
  predicate types and builders in ``kiln.attest.predicates`` (``ImageDigests``,
  ``sbom_statement``, ``vex_statement``, ``ctrf_statement``, ``image_signature_statement``);
* provenance — ``ProvenanceInputs`` -> ``provenance_statement`` (pure; the orchestrator
  observes, nothing in the build writes it), ``detect_git_source``;
* keys — ``Signer`` / ``Verifier`` protocols, ``EcdsaSigner`` / ``EcdsaVerifier``,
  ``load_signer``, ``load_verifier``, ``write_key_pair``, ``read_password``;
* signing — ``sign_envelope`` / ``pae`` (DSSE), ``BundleSigner`` with
  ``KeyBundleSigner`` and ``KeylessBundleSigner`` (``kiln.attest.keyless``, imported
  lazily: it needs sigstore-python), ``sign_statement``, ``parse_bundle``;
* verification — policies (``AllOf``, ``AnyOf``, ``UnsafeNoOp``, ``ImageSignature``,
  ``ProvenanceForImage``, ``RequiredAttestations``, ``BuilderIdAllowed``, ``MaxAge``,
  ``default_policy``), ``verify_image`` (pure), ``fetch_bundles``, ``read_bundle_dir``,
  ``verify_reference`` and ``attach_bundle`` (registry edges);
* publishing — ``sign_image`` and ``attest_image`` (signed ``Attestation`` values),
  ``attach_attestations`` (referrers of the index and each platform manifest).
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
