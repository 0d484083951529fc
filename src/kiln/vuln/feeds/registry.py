"""The ``--source`` registry: every feed by its name, its module loaded on first lookup.

Adding a source touches only this folder: its module (a ``Feed`` subclass whose
``name`` is the source name) and one line below. ``kiln db update --source`` takes its
choices and help from ``FEEDS``, without importing any feed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kiln.vuln.lazymap import LazyByName

if TYPE_CHECKING:
    from kiln.vuln.feeds.interface import Feed

# source name (part of the CLI contract) -> (module under kiln.vuln.feeds, Feed class)
_WHERE = {
    "debian-tracker": ("debian_tracker", "DebianTrackerFeed"),
    "debian-changelog": ("debian_changelog", "DebianChangelogFeed"),
    "debian-archive": ("debian_archive", "DebianArchiveFeed"),
    "osv": ("osv", "OsvFeed"),
    "nvd": ("nvd", "NvdFeed"),
    "kev": ("kev", "KevFeed"),
    "epss": ("epss", "EpssFeed"),
}


def _feed_class(cls: object, name: str) -> type[Feed]:
    from kiln.vuln.feeds.interface import Feed  # noqa: PLC0415 (loads the record model)

    if not (isinstance(cls, type) and issubclass(cls, Feed) and cls.name == name):
        raise TypeError(f"{cls!r} is not the {name} feed")
    return cls


#: Feed classes by ``--source`` name
FEEDS: Mapping[str, type[Feed]] = LazyByName("kiln.vuln.feeds", _WHERE, _feed_class)
