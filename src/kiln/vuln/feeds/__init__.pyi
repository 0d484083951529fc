"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .changelog_mentions import Mention, classify, mentions_from_changelog
from .debian_archive import Archive, DebianArchiveFeed, Scope
from .debian_changelog import DebianChangelogFeed, fixes_from_changelog
from .debian_tracker import DebianTrackerFeed
from .epss import EpssFeed
from .interface import Feed, FeedFormatError, FeedWarning, ImportMode
from .kev import KevFeed
from .nvd import NvdClient, NvdFeed, RateLimiter, parse_since
from .osv import OsvFeed, parse_osv
from .registry import FEEDS
from .source import FeedInput, from_bytes, from_path, resolve_input

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
