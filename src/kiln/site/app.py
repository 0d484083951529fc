"""The ASGI application: the site, its JSON API and the registry front door on one host."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp

from kiln.site.evidence import Evidence
from kiln.site.frontdoor import FrontDoor
from kiln.site.security import Guard, RateLimiter
from kiln.site.store import Store
from kiln.site.web import Site, SiteConfig, routes

#: per client: requests per second, and how many at once (a podman pull of a 7-layer,
#: 2-platform image makes about 20)
DEFAULT_RATE = 50.0
DEFAULT_BURST = 200


def create_app(
    config: SiteConfig, *, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST
) -> ASGIApp:
    """The whole application behind the guard (read-only, rate-limited, strict headers)."""
    store = Store(config.store)
    site = Site(config, store, Evidence(store, db=config.db))
    app = Starlette(routes=[*FrontDoor(store).routes(), *routes(site)])
    return Guard(app, RateLimiter(rate, burst))
