"""SBOMs of kiln images: SPDX 2.3 and CycloneDX 1.6 JSON, derived from what was installed.

``read_sbom_input(layout, platform=, lock=)`` reads one platform of an OCI image layout
into an ``SbomInput`` (image identity, installed Debian packages, files kiln generated);
``generate_spdx`` and ``generate_cyclonedx`` turn it into document bytes through
spdx-tools and cyclonedx-python-lib; ``generate_sbom`` does both steps for one format.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
