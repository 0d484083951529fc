"""SLSA Provenance v1 for a package build, written by the orchestrator from what it observed.

Pure: the build's output, the verified source files, the recipe and the build root go in;
an in-toto statement (kiln.attest.statement) comes out, whose subjects are the built
.debs. Nothing inside the sandbox writes it. Build type
``https://kiln.dev/build/package/v1`` (kiln-owned) means:

* ``externalParameters``: ``source`` (name, Debian version), ``recipe`` (path, sha256)
  when the build applied one;
* ``internalParameters``: ``codename``, ``buildflags`` (the root's buildflags.conf),
  ``profiles``, ``buildPath``;
* ``resolvedDependencies``: each source file with the sha256 of the signed index and
  its pool location, each patch, and the build-root tarball with its cache key.

Spec: https://slsa.dev/spec/v1.0/provenance
"""

from __future__ import annotations

from typing import Any

from kiln.attest.statement import Statement, Subject, make_statement
from kiln.fileio import sha256_file
from kiln.recipes.build import BUILD_PATH, BuildOutput
from kiln.recipes.buildroot import BuildRoot
from kiln.recipes.fetch import FetchedSource
from kiln.recipes.load import LoadedRecipe

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://kiln.dev/build/package/v1"
BUILDER_ID = "https://kiln.dev/builder/bwrap-dpkg-buildpackage/v1"


def package_provenance(
    output: BuildOutput,
    fetched: FetchedSource,
    root: BuildRoot,
    loaded: LoadedRecipe | None,
    *,
    codename: str,
) -> Statement:
    """The provenance statement of one package build (subjects: its .debs)."""
    subjects = [
        Subject(name=deb.name, digest={"sha256": sha256_file(deb)}) for deb in sorted(output.debs)
    ]
    package = fetched.package
    dependencies: list[dict[str, Any]] = [
        {
            "name": item.name,
            "uri": f"{fetched.mirror.split(' and ')[0]}/{item.name}",
            "digest": {"sha256": item.sha256},
            "annotations": {"synthesised": fetched.dsc_synthesised}
            if item.name.endswith(".dsc")
            else {},
        }
        for item in package.files
    ]
    external: dict[str, Any] = {"source": {"name": package.name, "version": package.version}}
    if loaded is not None:
        external["recipe"] = {"path": str(loaded.path), "sha256": loaded.sha256}
        dependencies += [
            {
                "name": f"patches/{p.name}",
                "digest": {"sha256": p.sha256},
                "annotations": {"cves": list(p.header.cves), "origin": p.header.origin or ""},
            }
            for p in loaded.patches
        ]
    dependencies.append(
        {
            "name": "build-root",
            "digest": {"sha256": root.sha256},
            "annotations": {"key": root.spec.key_document()},
        }
    )
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {
                "codename": codename,
                "buildflags": output.buildflags,
                "profiles": list(output.profiles),
                "buildPath": BUILD_PATH,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {"builder": {"id": BUILDER_ID}},
    }
    return make_statement(subjects, SLSA_PROVENANCE, predicate)
