"""apt's last tie-break between equally good providers: its package cache order.

When several packages provide a virtual name and none is selected, apt sorts them
(``CompareProviders`` in apt-pkg/depcache.cc) by: the real package of that name first,
then Essential, then ``Priority``, and finally by the package's id in apt's binary cache,
the *higher id first*. Ids are handed out in creation order while apt parses the
``Packages`` indexes in sources order: a package is created the first time its name is
mentioned, as a stanza's ``Package`` or as the target of one of its relations (apt
parses ``Pre-Depends``, ``Depends``, ``Conflicts``, ``Breaks``, ``Recommends``,
``Suggests``, ``Replaces``, ``Enhances`` and then ``Provides``).

``apt_cache_order`` recomputes that order from the index texts, so the resolver can break
the tie exactly as apt does (``resolve(..., apt_order=...)``). A real case in trixie:
``phpapi-20240924`` is provided by six ``optional`` packages and apt picks
``php8.4-phpdbg``. Without this order the resolver falls back to package names.

A mention qualified ``:any`` or with a foreign architecture names another entry of apt's
cache (``python3:any`` is not ``python3:amd64``), so it does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_RELATION_FIELDS = (
    "Pre-Depends",
    "Depends",
    "Conflicts",
    "Breaks",
    "Recommends",
    "Suggests",
    "Replaces",
    "Enhances",
    "Provides",
)
_WANTED = frozenset(("Package", *_RELATION_FIELDS))
_SPLIT = re.compile(r"[,|]")
_NAME = re.compile(r"\s*([^\s(:\[]+)(?::(\S+?))?(?=[\s(\[]|$)")


def apt_cache_order(indexes: Iterable[str], *, arch: str) -> Mapping[str, int]:
    """Name -> position of its first mention, over ``indexes`` in apt's sources order.

    ``indexes`` are the texts of one architecture's ``Packages`` files (the suites
    lowest precedence first, as in ``Distro.suites``).
    """
    order: dict[str, int] = {}
    for text in indexes:
        for stanza in text.split("\n\n"):
            fields = _fields(stanza)
            name = fields.get("Package")
            if not name:
                continue
            order.setdefault(name, len(order))
            for field in _RELATION_FIELDS:
                for item in _SPLIT.split(fields.get(field, "")):
                    match = _NAME.match(item)
                    if match is None:
                        continue
                    target, qualifier = match.group(1), match.group(2)
                    if qualifier in (None, "native", arch):
                        order.setdefault(target, len(order))
    return order


def _fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.split("\n"):
        if line[:1] in (" ", "\t"):
            if key in fields:
                fields[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        if key in _WANTED:
            fields[key] = value.strip()
    return fields
