"""The ASGI application: the site, its JSON API and the registry front door on one host."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import ASGIApp

from kiln.errors import KilnError
from kiln.site.evidence import Evidence
from kiln.site.frontdoor import FrontDoor
from kiln.site.security import Guard, RateLimiter
from kiln.site.store import Store
from kiln.site.web import Site, SiteConfig, routes

#: per client: requests per second, and how many at once (a podman pull of a 7-layer,
#: 2-platform image makes about 20)
DEFAULT_RATE = 50.0
DEFAULT_BURST = 200


def warm(site: Site) -> None:
    """Scan and size every image once, so the first catalog view does not wait for all
    the scans (each takes a second or more); a store that cannot be read is left to the
    pages, which say why."""
    try:
        for image in site.store.images():
            site.summary(image)
    except KilnError:
        return


def create_app(
    config: SiteConfig,
    *,
    rate: float = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    warm_up: bool = True,
) -> ASGIApp:
    """The whole application behind the guard (read-only, rate-limited, strict headers).

    With ``warm_up`` the catalog's scans start in a background thread at start-up."""
    store = Store(config.store)
    site = Site(config, store, Evidence(store, db=config.db))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=warm, args=(site,), name="kiln-site-warm", daemon=True).start()
        yield

    app = Starlette(routes=[*FrontDoor(store).routes(), *routes(site)], lifespan=lifespan)
    return Guard(app, RateLimiter(rate, burst))
