"""The OpenAPI 3.1 description of the site's JSON API (``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_TAG = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"}}
_ARCH = {
    "name": "arch",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Debian architecture (amd64, arm64); default: the image's first",
}
_ERROR = {
    "description": "not found",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}
_COUNTS = {
    "type": ["object", "null"],
    "additionalProperties": {"type": "integer"},
    "description": "active findings per severity (VEX applied)",
}
_SUMMARY = {
    "type": "object",
    "required": ["name", "label", "variant", "tags", "digest", "cves"],
    "properties": {
        "name": {"type": "string"},
        "label": {"type": "string"},
        "variant": {"type": "string"},
        "release": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "digest": {"type": "string", "pattern": "^sha256:[a-f0-9]{64}$"},
        "description": {"type": "string"},
        "version": {"type": "string"},
        "platforms": {"type": "array", "items": {"type": "string"}},
        "compressed": {"type": "object", "additionalProperties": {"type": "integer"}},
        "uncompressed": {
            "type": "object",
            "additionalProperties": {"type": ["integer", "null"]},
            "description": "null: a layer does not decompress (damaged)",
        },
        "cves": _COUNTS,
        "cves_total": {"type": ["integer", "null"]},
        "last_rebuild": {"type": "string"},
    },
}


def _get(summary: str, schema: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": list(params),
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": schema}},
                },
                "404": _ERROR,
            },
        }
    }


def _object(*required: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_ARRAY = {"type": "array", "items": {"type": "object"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def openapi_document() -> dict[str, Any]:
    """The API description (hand-written: the routes are few and their shapes fixed)."""
    images = "/api/v1/images"
    tag = images + "/{name}/tags/{tag}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kiln catalog",
            "version": "1",
            "description": "kiln's images, their evidence and their vulnerabilities "
            "(VEX applied), read-only. The OCI distribution pull API is served at /v2/.",
        },
        "components": {"schemas": {"ImageSummary": _SUMMARY}},
        "paths": {
            images: _get(
                "the catalog (q, family, release, variant filter it)",
                _object(
                    "images",
                    images={
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ImageSummary"},
                    },
                    facets={"type": "object"},
                    query={"type": "object"},
                    problems=_STRINGS,
                ),
                *(
                    {"name": k, "in": "query", "required": False, "schema": {"type": "string"}}
                    for k in ("q", "family", "release", "variant")
                ),
            ),
            images + "/{name}": _get(
                "an image: its variants, tags, platforms, sizes, what it replaces",
                _object(
                    "name",
                    "variants",
                    "tags",
                    name={"type": "string"},
                    repository={"type": "string"},
                    variants=_ARRAY,
                    tags=_STRINGS,
                    advisories=_ARRAY,
                    pull_requests=_ARRAY,
                ),
                _NAME,
            ),
            tag: _get("one tag", {"$ref": "#/components/schemas/ImageSummary"}, _NAME, _TAG),
            tag + "/packages": _get(
                "the installed packages of one platform",
                _object("packages", packages=_ARRAY, arch={"type": "string"}),
                _NAME,
                _TAG,
                _ARCH,
            ),
            tag + "/vulnerabilities": _get(
                "the scan of one platform, VEX applied (kiln scan --format json's summary "
                "and findings) and the command that reproduces it",
                _object(
                    "summary",
                    "findings",
                    "command",
                    summary={"type": "object"},
                    findings=_ARRAY,
                    command={"type": "string"},
                ),
                _NAME,
                _TAG,
                _ARCH,
            ),
            tag + "/provenance": _get(
                "signatures and attestations verified with the published key",
                _object(
                    "verification",
                    "commands",
                    verification={"type": "object"},
                    provenance={"type": ["object", "null"]},
                    commands=_STRINGS,
                ),
                _NAME,
                _TAG,
            ),
            "/api/v1/advisories": _get(
                "the remediation loop's advisory events, newest first",
                _object("advisories", advisories=_ARRAY, problem={"type": "string"}),
            ),
            images + "/{name}/diff": _get(
                "packages, CVEs and size between two tags",
                _object(
                    "added",
                    "removed",
                    "changed",
                    "cves_fixed",
                    "compressed_change",
                    added=_ARRAY,
                    removed=_ARRAY,
                    changed=_ARRAY,
                    cves_fixed=_STRINGS,
                    compressed_change={"type": "integer"},
                ),
                _NAME,
                *(
                    {"name": k, "in": "query", "required": False, "schema": {"type": "string"}}
                    for k in ("from", "to", "arch")
                ),
            ),
        },
    }
