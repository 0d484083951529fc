"""OCI image content and layouts: the one implementation every package reads and writes.

``digest`` (``Digest``), ``model`` (descriptors, manifests, indexes, canonical JSON),
``layout`` (verified reads of an image layout, its writes) and ``staging`` (the one
atomic directory commit). The registry client, the assembler, the sandbox, the
inventory, the SBOM reader and the compat suite all use these; none has its own copy.
Specs: https://github.com/opencontainers/image-spec/blob/v1.1.0/ (descriptor.md,
manifest.md, image-index.md, image-layout.md).
"""
