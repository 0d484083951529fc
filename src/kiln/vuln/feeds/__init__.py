"""Vulnerability feeds: each turns one input into records for ``kiln.vuln.db``.

Source names are part of the CLI contract (``kiln db update --source NAME``).
"""

import lazy_loader

# Feed modules load on first use (see __init__.pyi for what is exported); ``FEEDS``
# names every source without importing one (``kiln db update --help`` lists them).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
