"""kiln's advisories: an append-only event log per (image, vulnerability) and its exports.

``AdvisoryStore`` (the ``advisory_events`` table of kiln's database) appends and reads
``AdvisoryEvent``s; ``state`` derives where each vulnerability stands; ``openvex_for_image``
writes an image's OpenVEX; ``osv`` exports kiln's own fixes as OSV records. See
docs/advisories.md.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): publishing an
# image without advisories never loads SQLAlchemy for them.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
