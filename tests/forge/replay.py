"""Replays recorded forge API exchanges through ``httpx.MockTransport``.

GitHub, GitLab and Forgejo cannot be reached from here, so the remote forges are tested
against recordings in ``recordings/*.json``, written from each forge's documented API
(GitHub REST "pulls" and "issues/labels", GitLab v4 "merge_requests", Forgejo/Gitea v1
swagger), not captured from a live server. Each exchange is a request kiln must make,
in order (method, path, the query parameters and JSON fields given), and the answer to
give. A string ``{{body}}`` in an answer stands for the body kiln sent (``body`` or
``description``), since the forge echoes it back; ``{{reset}}`` in a header for the
epoch 5 s from now (a rate limit's reset time), ``{{date}}`` for the HTTP date 7 s from
now; ``{{head}}`` for the commit kiln pushed
(set by the test: commit ids depend on the fixture repository).
"""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path
from typing import Any

import httpx

RECORDINGS = Path(__file__).parent / "recordings"


class Replay:
    """A transport that answers a recording's exchanges in order and checks each request."""

    def __init__(self, name: str, *, token: str = "s3cr3t-token") -> None:  # noqa: S107 (the fake token)
        document = json.loads((RECORDINGS / f"{name}.json").read_text())
        self.exchanges: list[dict[str, Any]] = document["exchanges"]
        self.position = 0
        self.token = token
        self.requests: list[httpx.Request] = []
        #: ``{{name}}`` in an answer becomes ``values[name]`` (a commit only the test knows)
        self.values: dict[str, str] = {}

    def client(self) -> httpx.Client:
        """An httpx client whose every request is answered by this replay."""
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    @property
    def done(self) -> bool:
        """Whether every recorded exchange was made."""
        return self.position == len(self.exchanges)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert self.position < len(self.exchanges), (
            f"unexpected request {request.method} {request.url}"
        )
        exchange = self.exchanges[self.position]
        self.position += 1
        self.requests.append(request)
        want = exchange["request"]
        path = request.url.raw_path.split(b"?")[0].decode()
        assert (request.method, path) == (want["method"], want["path"]), (
            f"exchange {self.position}: {request.method} {path}, recorded "
            f"{want['method']} {want['path']}"
        )
        for key, value in want.get("params", {}).items():
            assert request.url.params.get(key) == value, f"exchange {self.position}: param {key}"
        sent: dict[str, Any] = json.loads(request.content) if request.content else {}
        for key, value in want.get("json", {}).items():
            assert sent.get(key) == value, (
                f"exchange {self.position}: field {key}={sent.get(key)!r}"
            )
        assert self.token in " ".join(request.headers.values()), "the token is not sent"
        answer = exchange["response"]
        echoed = sent.get("body") or sent.get("description") or ""
        if "raw" in answer:
            content = answer["raw"].encode()
        else:
            text = json.dumps(answer.get("json")).replace('"{{body}}"', json.dumps(echoed))
            for name, value in self.values.items():
                text = text.replace("{{" + name + "}}", value)
            content = text.encode()
        reset = str(int(time.time()) + 5)  # "{{reset}}": a rate limit that resets in 5 s
        date = email.utils.formatdate(time.time() + 7, usegmt=True)  # "{{date}}": in 7 s
        headers = {
            k: v.replace("{{reset}}", reset).replace("{{date}}", date)
            for k, v in answer.get("headers", {}).items()
        }
        return httpx.Response(answer["status"], headers=headers, content=content)
