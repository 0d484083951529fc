"""Pull requests behind one interface: the local git forge (the default) and the GitHub,
GitLab and Forgejo REST adapters; the evidence a reviewer reads.

Public interface: ``Forge`` (``open_or_update(change) -> PullRequest``, ``list()``),
``ChangeRequest``, ``PullRequest``, ``LocalGitForge`` (branches ``kiln/<kind>/<image>``
and PR records on ``refs/kiln/prs`` in the catalog repository), ``DryRunForge`` (writes
nothing), ``forge_from_config(environ, repo=)``; ``kiln.forge.evidence``: ``Evidence``,
``CveRow``, ``render_markdown``. See docs/forge.md.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
