"""The catalog site: server-rendered pages and the JSON API over the store and the evidence.

Pages (Jinja2, autoescaped; every value also passes ``kiln.text.plain_line``, so a feed
or SBOM string can carry neither markup nor terminal escapes onto the page):

* ``/`` catalog: search (``q``), filters (``family``, ``release``, ``variant``);
* ``/images/<name>``: tags, platforms, digests, sizes, what it replaces, the FROM line;
* ``/images/<name>/<tag>``: one tag; its ``/packages``, ``/vulnerabilities``,
  ``/provenance`` and SBOM downloads (``/sbom.spdx.json``, ``/sbom.cdx.json``);
* ``/images/<name>/diff?from=A&to=B``: packages, CVEs fixed, size change;
* ``/advisories``: the remediation loop's events; ``/kiln.pub``: the published key.

``/api/v1/...`` returns the same data as JSON; ``/api/openapi.json`` describes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kiln.errors import KilnError
from kiln.registry import is_loopback
from kiln.site.evidence import Evidence
from kiln.site.openapi import openapi_document
from kiln.site.store import (
    DIGEST_PATTERN,
    PREFIX,
    TAG_PATTERN,
    PlatformImage,
    Repository,
    Store,
    StoredImage,
    published_at,
    valid_name,
)
from kiln.site.timeline import advisories_for, pull_requests_for, safely
from kiln.text import plain_line

HERE = Path(__file__).parent
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
_ARCH = re.compile(r"[a-z0-9]{1,16}")
_QUERY_MAX = 100


def _finalize(value: object) -> object:
    """Every ``{{ }}`` value: strings lose control characters and escape sequences."""
    if isinstance(value, str):
        return plain_line(value)
    return "" if value is None else value


def _mib(size: int | None) -> str:
    return "unknown" if size is None else f"{size / 1024**2:.1f} MiB"


def templates() -> jinja2.Environment:
    """The site's templates: autoescaped everywhere, every value through ``plain_line``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["mib"] = _mib
    env.filters["short"] = lambda digest: str(digest)[:19]
    return env


@dataclass(frozen=True)
class SiteConfig:
    """How the site was started."""

    store: Path
    db: str | None = None
    host: str = "127.0.0.1:8080"  # the address commands on the pages name
    forge: Path | None = None  # the catalog repository the local forge's PRs are in


class NotFound(Exception):  # noqa: N818 - a page's 404, raised inside handlers
    """The named image, tag or platform is not in the store."""


class Site:
    """Handlers for pages and the API (one instance per app)."""

    def __init__(self, config: SiteConfig, store: Store, evidence: Evidence) -> None:
        self.config = config
        self.store = store
        self.evidence = evidence
        self.env = templates()

    # --------------------------------------------------------------- shared lookups

    def host(self, request: Request) -> str:
        """The registry host for commands: the one the browser used, if well formed."""
        netloc = request.headers.get("host", "")
        return netloc if _HOST.fullmatch(netloc) else self.config.host

    def _insecure(self, host: str) -> str:
        return "" if is_loopback(host) else " --insecure"

    def repository(self, name: str) -> Repository:
        """The repository ``kiln/<name>``, or ``NotFound``."""
        if not valid_name(name):
            raise NotFound(name)
        repo = self.store.repositories().get(name)
        if repo is None:
            raise NotFound(name)
        return repo

    def tagged(self, name: str, tag: str) -> StoredImage:
        """The image ``name:tag`` names (or ``name@digest``: an earlier release whose tag
        moved on), or ``NotFound``."""
        repository = self.repository(name)
        if DIGEST_PATTERN.fullmatch(tag):
            found = next((i for i in repository.images if i.digest == tag), None)
        elif TAG_PATTERN.fullmatch(tag):
            found = repository.tags().get(tag)
        else:
            found = None
        if found is None:
            raise NotFound(f"{name}:{tag}")
        return found

    @staticmethod
    def platform_of(request: Request, image: StoredImage) -> PlatformImage:
        """The platform ``?arch=`` names (default: the image's first)."""
        arch = request.query_params.get("arch") or (
            image.platforms[0].arch if image.platforms else ""
        )
        found = image.platform(arch) if _ARCH.fullmatch(arch) else None
        if found is None:
            raise NotFound(arch)
        return found

    # --------------------------------------------------------------- data (pages and API)

    def release_of(self, image: StoredImage) -> str:
        """The release (``debian-13``): site.json, else the image's os-release."""
        if image.meta and image.meta.release:
            return image.meta.release
        if not image.platforms:
            return ""
        try:
            distro = self.evidence.inventory(image, image.platforms[0].platform).distro
        except KilnError:
            return ""
        return f"{distro.id}-{distro.version_id}" if distro and distro.version_id else ""

    def summary(self, image: StoredImage) -> dict[str, Any]:
        """One catalog row."""
        counts = self.evidence.counts(image)
        sizes = self.store.sizes(image)
        return {
            "name": image.name,
            "label": image.label,
            "variant": image.variant,
            "release": self.release_of(image),
            "tags": list(image.tags),
            "digest": image.digest,
            "description": image.description,
            "version": image.version,
            "platforms": [p.platform for p in image.platforms],
            "compressed": {arch: c for arch, (c, _) in sizes.items()},
            "uncompressed": {arch: u for arch, (_, u) in sizes.items()},
            "cves": counts,
            "cves_total": sum(counts.values()) if counts is not None else None,
            "last_rebuild": published_at(image.meta, image.created),
        }

    def catalog(self, request: Request) -> dict[str, Any]:
        """The catalog rows, filtered by ``q``, ``family``, ``release``, ``variant``."""
        q = request.query_params.get("q", "")[:_QUERY_MAX].strip().lower()
        wanted = {
            key: request.query_params.get(key, "")[:_QUERY_MAX]
            for key in ("family", "release", "variant")
        }
        rows = [self.summary(image) for image in self.store.images()]
        facets = {
            "family": sorted({r["name"] for r in rows}),
            "release": sorted({r["release"] for r in rows if r["release"]}),
            "variant": sorted({r["variant"] for r in rows}),
        }
        key_of = {"family": "name", "release": "release", "variant": "variant"}
        for key, value in wanted.items():
            if value:
                rows = [r for r in rows if r[key_of[key]] == value]
        if q:
            rows = [
                r
                for r in rows
                if q in r["label"].lower() or q in r["description"].lower() or q in r["version"]
            ]
        rows.sort(key=lambda r: (r["name"], r["variant"] != "runtime", r["variant"]))
        return {
            "images": rows,
            "facets": facets,
            "query": {"q": q, **wanted},
            "problems": self.store.problems(),
        }

    def image_data(self, request: Request, name: str) -> dict[str, Any]:
        """The image page: variants, earlier releases, advisories, pull requests."""
        repo = self.repository(name)
        host = self.host(request)
        variants = []
        for image in repo.current:
            sizes = self.store.sizes(image)
            variants.append(
                {
                    **self.summary(image),
                    "from_line": f"FROM {host}/{PREFIX}/{image.name}:{image.tags[0]}",
                    "pull": f"podman pull --tls-verify=false "
                    f"{host}/{PREFIX}/{image.name}:{image.tags[0]}",
                    "platform_details": [
                        {
                            "arch": p.arch,
                            "platform": p.platform,
                            "digest": str(p.manifest.digest),
                            "compressed": sizes[p.arch][0],
                            "uncompressed": sizes[p.arch][1],
                        }
                        for p in image.platforms
                    ],
                    "replaces": list(image.meta.replaces) if image.meta else [],
                    "notes": list(image.meta.notes) if image.meta else [],
                }
            )
        tags = repo.tags()
        earlier = [
            {
                "label": image.label,
                "tag": image.tag,
                # its tag moved on (no version: latest again): reachable by digest
                "ref": image.tag if tags.get(image.tag) is image else image.digest,
                "digest": image.digest,
                "published": published_at(image.meta, image.created),
            }
            for image in sorted(
                (i for i in repo.images if i.archived),
                key=lambda i: published_at(i.meta, i.created),
                reverse=True,
            )
        ]
        labels = {repo.name, *(image.label for image in repo.images)}
        events, events_problem = safely(advisories_for, self.config.db, labels)
        prs, prs_problem = safely(pull_requests_for, self.config.forge, labels)
        return {
            "name": repo.name,
            "repository": f"{host}/{repo.path}",
            "variants": variants,
            "earlier": earlier,
            "tags": sorted(repo.tags()),
            "advisories": events,
            "advisories_problem": events_problem,
            "pull_requests": prs,
            "pull_requests_problem": prs_problem,
            "forge": str(self.config.forge) if self.config.forge else "",
        }

    def advisories_data(self, request: Request) -> dict[str, Any]:
        """The advisory timeline of every image."""
        events, problem = safely(advisories_for, self.config.db, None)
        return {"advisories": events, "problem": problem}

    def tag_data(self, request: Request, name: str, tag: str) -> dict[str, Any]:
        """One tag: its digest, platforms and the other tags to compare with."""
        image = self.tagged(name, tag)
        host = self.host(request)
        return {
            **self.summary(image),
            "tag": tag,
            "reference": f"{host}/{PREFIX}/{name}:{tag}",
            "by_digest": f"{host}/{PREFIX}/{name}@{image.digest}",
            "from_line": f"FROM {host}/{PREFIX}/{name}:{tag}",
            "platform_details": [
                {"arch": p.arch, "platform": p.platform, "digest": str(p.manifest.digest)}
                for p in image.platforms
            ],
            "other_tags": sorted(t for t in self.repository(name).tags() if t != tag),
        }

    def _scan_command(self, request: Request, name: str, tag: str, platform: str) -> str:
        host = self.host(request)
        db = f" --db {self.config.db}" if self.config.db else ""
        return (
            f"kiln scan {host}/{PREFIX}/{name}:{tag} --platform {platform} --key kiln.pub"
            f"{db}{self._insecure(host)}"
        )

    def packages_data(self, request: Request, name: str, tag: str) -> dict[str, Any]:
        """The installed packages of one platform, with the signed SBOMs."""
        image = self.tagged(name, tag)
        platform = self.platform_of(request, image)
        arch = platform.arch
        inventory = self.evidence.inventory(image, platform.platform)
        described = self.evidence.descriptions(image, arch)
        return {
            "name": name,
            "tag": tag,
            "arch": arch,
            "archs": [p.arch for p in image.platforms],
            "packages": [
                {
                    "ecosystem": p.ecosystem,
                    "name": p.name,
                    "version": p.version,
                    "source": p.source_name,
                    "purl": p.purl,
                    "description": described.get(p.name, ""),
                }
                for p in inventory.packages
            ],
            "sboms": {
                fmt: self.evidence.sbom(image, fmt, arch) is not None
                for fmt in ("spdx", "cyclonedx")
            },
        }

    def vulnerabilities_data(self, request: Request, name: str, tag: str) -> dict[str, Any]:
        """The scan of one platform and the command reproducing it."""
        image = self.tagged(name, tag)
        platform = self.platform_of(request, image)
        arch = platform.arch
        report = self.evidence.scan_json(image, platform.platform)
        command = self._scan_command(request, name, tag, platform.platform)
        return {
            "name": name,
            "tag": tag,
            "arch": arch,
            "archs": [p.arch for p in image.platforms],
            "platform": platform.platform,
            "command": command,
            "json_command": f"{command} --format json",
            "summary": report["summary"],
            "package_count": report["package_count"],
            "findings": report["findings"],
            "snapshots": report["snapshots"],
            "warnings": report["warnings"],
        }

    def provenance_data(self, request: Request, name: str, tag: str) -> dict[str, Any]:
        """Verification with the published key, the provenance, the commands."""
        image = self.tagged(name, tag)
        host = self.host(request)
        verdict = self.evidence.verdict(image)
        provenance = _provenance_summary(image)
        return {
            "name": name,
            "tag": tag,
            "digest": image.digest,
            "verification": verdict.to_json(),
            "provenance": provenance,
            "unreadable": list(image.unreadable),
            "key_url": f"http://{host}/kiln.pub",
            "commands": [
                f"curl -fsSO http://{host}/kiln.pub",
                f"kiln verify {host}/{PREFIX}/{name}:{tag} --key kiln.pub{self._insecure(host)}",
            ],
        }

    def diff_data(self, request: Request, name: str) -> dict[str, Any]:
        """Two tags compared on a platform both have."""
        repo = self.repository(name)
        tags = sorted(repo.tags())
        first = request.query_params.get("from") or (tags[0] if tags else "")
        second = request.query_params.get("to") or (tags[-1] if tags else "")
        before, after = self.tagged(name, first), self.tagged(name, second)
        archs = [p.arch for p in before.platforms if after.platform(p.arch) is not None]
        arch = request.query_params.get("arch") or (archs[0] if archs else "")
        if arch not in archs:
            raise NotFound(arch)
        result = self.evidence.diff(before, after, arch)
        if result is None:
            raise NotFound(arch)
        return {
            "name": name,
            "from": first,
            "to": second,
            "tags": tags,
            "archs": archs,
            **result.to_json(),
        }


def _provenance_summary(image: StoredImage) -> dict[str, Any] | None:
    """The SLSA provenance's builder, invocation, times and materials (as signed)."""
    from kiln.attest import PROVENANCE_V1  # noqa: PLC0415
    from kiln.site.evidence import predicate_of  # noqa: PLC0415

    for bundle in image.bundles:
        if bundle.predicate_type != PROVENANCE_V1 or image.digest not in bundle.subjects:
            continue
        predicate = predicate_of(bundle) or {}
        definition = predicate.get("buildDefinition") or {}
        details = predicate.get("runDetails") or {}
        metadata = details.get("metadata") or {}
        deps = definition.get("resolvedDependencies") or []
        return {
            "build_type": str(definition.get("buildType", "")),
            "builder": str((details.get("builder") or {}).get("id", "")),
            "invocation": str(metadata.get("invocationId", "")),
            "started": str(metadata.get("startedOn", "")),
            "finished": str(metadata.get("finishedOn", "")),
            "materials": [
                {"uri": str(d.get("uri", "")), "digest": d.get("digest") or {}}
                for d in deps[:200]
                if isinstance(d, dict)
            ],
            "material_count": len(deps) if isinstance(deps, list) else 0,
        }
    return None


def routes(site: Site) -> list[Route | Mount]:
    """Pages, API and static files. Handlers are plain functions: Starlette runs them in
    its thread pool, so a first scan (seconds) does not hold up other requests."""

    def page(template: str, make: Any) -> Any:
        """A handler rendering ``template`` with what ``make`` returns."""

        def handler(request: Request) -> Response:
            try:
                data = make(request, **request.path_params)
            except NotFound as exc:
                body = site.env.get_template("error.html").render(
                    title="not found", message=f"not found: {exc}"
                )
                return HTMLResponse(body, status_code=404)
            except KilnError as exc:
                body = site.env.get_template("error.html").render(
                    title="error", message=exc.message
                )
                return HTMLResponse(body, status_code=500)
            html = site.env.get_template(template).render(data=data, host=site.host(request))
            return HTMLResponse(html)

        return handler

    def api(make: Any) -> Any:
        """A handler returning what ``make`` returns as JSON."""

        def handler(request: Request) -> Response:
            try:
                return JSONResponse(make(request, **request.path_params))
            except NotFound as exc:
                return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
            except KilnError as exc:
                return JSONResponse({"error": exc.message}, status_code=500)

        return handler

    def sbom(request: Request) -> Response:
        """The signed SPDX or CycloneDX document of one platform, as a download."""
        name, tag, fmt = (request.path_params[k] for k in ("name", "tag", "fmt"))
        if fmt not in ("spdx", "cdx"):
            return JSONResponse({"error": f"not found: {fmt}"}, status_code=404)
        try:
            image = site.tagged(name, tag)
            arch = site.platform_of(request, image).arch
        except NotFound as exc:
            return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
        document = site.evidence.sbom(image, "spdx" if fmt == "spdx" else "cyclonedx", arch)
        if document is None:
            return JSONResponse({"error": "no signed SBOM of that format"}, status_code=404)
        filename = f"{name}-{tag}-{arch}.{fmt}.json"
        return Response(
            document,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    def public_key(request: Request) -> Response:
        """The published public key (PEM)."""
        path = site.store.public_key
        if not path.is_file():
            return Response(b"no published key\n", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type="application/x-pem-file")

    async def openapi(request: Request) -> Response:
        """The OpenAPI description of the JSON API."""
        return JSONResponse(openapi_document())

    s = site
    return [
        Route("/", page("catalog.html", s.catalog)),
        Route("/advisories", page("advisories.html", s.advisories_data)),
        Route("/api/v1/advisories", api(s.advisories_data)),
        Route("/kiln.pub", public_key),
        Route("/api/openapi.json", openapi),
        Route("/api/v1/images", api(s.catalog)),
        Route("/api/v1/images/{name}/diff", api(s.diff_data)),
        Route("/api/v1/images/{name}/tags/{tag}", api(s.tag_data)),
        Route("/api/v1/images/{name}/tags/{tag}/packages", api(s.packages_data)),
        Route("/api/v1/images/{name}/tags/{tag}/vulnerabilities", api(s.vulnerabilities_data)),
        Route("/api/v1/images/{name}/tags/{tag}/provenance", api(s.provenance_data)),
        Route("/api/v1/images/{name}", api(s.image_data)),
        Route("/images/{name}/diff", page("diff.html", s.diff_data)),
        Route("/images/{name}/tags/{tag}/packages", page("packages.html", s.packages_data)),
        Route(
            "/images/{name}/tags/{tag}/vulnerabilities",
            page("vulnerabilities.html", s.vulnerabilities_data),
        ),
        Route(
            "/images/{name}/tags/{tag}/provenance",
            page("provenance.html", s.provenance_data),
        ),
        Route("/images/{name}/tags/{tag}/sbom.{fmt:str}.json", sbom),
        Route("/images/{name}/tags/{tag}", page("tag.html", s.tag_data)),
        Route("/images/{name}", page("image.html", s.image_data)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
