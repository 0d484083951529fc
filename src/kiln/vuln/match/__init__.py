"""Pure matching: installed packages + feed data + VEX -> findings."""

from kiln.vuln.match.core import DEFAULT_MATCHERS, match_packages
from kiln.vuln.match.debian import DebianMatcher
from kiln.vuln.match.interface import Candidate, MatchContext, Matcher
from kiln.vuln.match.osv import OsvMatcher, range_affects

__all__ = [
    "DEFAULT_MATCHERS",
    "Candidate",
    "DebianMatcher",
    "MatchContext",
    "Matcher",
    "OsvMatcher",
    "match_packages",
    "range_affects",
]
