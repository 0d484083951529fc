"""``kiln schema``: the JSON Schema of image specs, for editors and CI validation."""

from __future__ import annotations

import json

from kiln.cli.app import app, console
from kiln.spec import ImageSpec


@app.command()
def schema() -> None:
    """Print the JSON Schema that image specs (images/<name>.yaml) follow."""
    document = ImageSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "kiln image spec"
    console.print_json(json.dumps(document, sort_keys=True))
