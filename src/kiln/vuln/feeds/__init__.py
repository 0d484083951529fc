"""Vulnerability feeds: each turns one input into records for ``kiln.vuln.db``.

Source names are part of the CLI contract (``kiln db update --source NAME``).
"""

from kiln.vuln.feeds.changelog_mentions import Mention, classify, mentions_from_changelog
from kiln.vuln.feeds.debian_archive import Archive, DebianArchiveFeed, Scope
from kiln.vuln.feeds.debian_changelog import DebianChangelogFeed, fixes_from_changelog
from kiln.vuln.feeds.debian_tracker import DebianTrackerFeed
from kiln.vuln.feeds.epss import EpssFeed
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning, ImportMode
from kiln.vuln.feeds.kev import KevFeed
from kiln.vuln.feeds.nvd import NvdClient, NvdFeed, RateLimiter, parse_since
from kiln.vuln.feeds.osv import OsvFeed, parse_osv
from kiln.vuln.feeds.source import FeedInput, from_bytes, from_path, resolve_input

FEEDS: dict[str, type[Feed]] = {
    f.name: f
    for f in (
        DebianTrackerFeed,
        DebianChangelogFeed,
        DebianArchiveFeed,
        OsvFeed,
        NvdFeed,
        KevFeed,
        EpssFeed,
    )
}

__all__ = [
    "FEEDS",
    "Archive",
    "DebianArchiveFeed",
    "DebianChangelogFeed",
    "DebianTrackerFeed",
    "EpssFeed",
    "Feed",
    "FeedFormatError",
    "FeedInput",
    "FeedWarning",
    "ImportMode",
    "KevFeed",
    "Mention",
    "NvdClient",
    "NvdFeed",
    "OsvFeed",
    "RateLimiter",
    "Scope",
    "classify",
    "fixes_from_changelog",
    "from_bytes",
    "from_path",
    "mentions_from_changelog",
    "parse_osv",
    "parse_since",
    "resolve_input",
]
