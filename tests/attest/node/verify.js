// Verify a Sigstore bundle with the Sigstore JS verifier (@sigstore/verify) and a PEM
// public key. Used by tests/attest/test_peer_verify.py as an independent check of
// kiln's DSSE envelopes and Sigstore bundles.
//
// usage: node verify.js BUNDLE.json PUBLIC_KEY.pem
// exit 0 and {"ok": true, ...} on stdout when the bundle verifies; exit 1 and
// {"ok": false, "code": ..., "message": ...} when it is rejected.
//
// kiln's key-signed bundles carry no transparency-log entry and no timestamp, so the
// verifier is told to require none (tlogThreshold: 0, timestampThreshold: 0); the
// public key is found through the bundle's publicKey.hint (the trust material's
// key finder), like cosign's --key verification.
'use strict';

const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const { crypto } = require('@sigstore/core');

function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: node verify.js BUNDLE.json PUBLIC_KEY.pem\n');
    return 2;
  }
  const [bundlePath, keyPath] = argv;
  try {
    const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
    const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath, 'utf8'));
    const emptyRoot = {
      certificateAuthorities: [],
      timestampAuthorities: [],
      tlogs: [],
      ctlogs: [],
    };
    const hint = bundle.verificationMaterial.content.publicKey.hint;
    const trust = toTrustMaterial(emptyRoot, (keyHint) => {
      if (keyHint !== hint) {
        throw new Error(`unexpected key hint ${keyHint}`);
      }
      return { publicKey, validFor: () => true };
    });
    const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
    const entity = toSignedEntity(bundle);
    verifier.verify(entity);
    const payload = Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8');
    process.stdout.write(JSON.stringify({ ok: true, hint, statement: JSON.parse(payload) }) + '\n');
    return 0;
  } catch (err) {
    process.stdout.write(
      JSON.stringify({ ok: false, code: err.code || err.name, message: String(err.message) }) + '\n',
    );
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
