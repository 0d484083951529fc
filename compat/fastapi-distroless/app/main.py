"""A FastAPI service: pydantic validation (a compiled extension) and async handlers."""

import hashlib
import ssl
import sys

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="compat")


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "hello from fastapi"}


@app.get("/info")
async def info() -> dict[str, object]:
    context = ssl.create_default_context()
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "openssl": ssl.OPENSSL_VERSION.split()[0],
        "tls_verify": context.verify_mode == ssl.CERT_REQUIRED,
        "sha256": hashlib.sha256(b"kiln").hexdigest(),
    }


@app.post("/items")
async def create(item: Item) -> dict[str, object]:
    return {"name": item.name.upper(), "total": round(item.price * 1.2, 2), "tags": sorted(item.tags)}
