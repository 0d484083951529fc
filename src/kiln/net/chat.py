"""The one OpenAI-compatible chat-completions client (research's LLM re-ranker, the
factory's self-healing agent).

API: https://platform.openai.com/docs/api-reference/chat/create: ``POST
{base}/chat/completions`` with ``model`` and ``messages`` (and, for the agent,
``tools``); the answer's ``choices[0].message``. What this module owns: the endpoint's
configuration from the environment (``ChatEndpoint.from_env``: https, or http only on
loopback; no credentials in the URL; the token in its own variable), the request
(bearer token, ``temperature: 0``), the timeout, retries of a timeout or a retryable
status (``RETRY_STATUS``: 408, 429, 5xx; none unless asked), the answer read through
``jsonlimits`` with a size cap, and the shape check of ``choices[0].message``. Every
failure is a ``ChatError`` with a one-line reason; the callers decide what it means
(the re-ranker keeps the rules' order, the agent ends the repair), so a broken endpoint
never crashes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from kiln.errors import InputError, KilnError
from kiln.jsonlimits import parse_json
from kiln.net._hosts import is_loopback_host
from kiln.net._http import RETRY_STATUS, http_client
from kiln.text import plain_line


class ChatError(Exception):
    """The endpoint could not be asked or answered something unusable (one-line reason)."""


def check_token_url(url: str, *, variable: str) -> str:
    """``url`` if a token may be sent to it: http(s), https unless on loopback, no
    credentials in it; else ``InputError`` naming ``variable``. (The chat endpoints and
    the forges' APIs: ``kiln.forge.config`` uses it too.)"""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"{variable}={url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InputError(
            f"{variable}={url!r} would send the token in clear text",
            hint="use https (plain http only for a service on this machine)",
        )
    if parts.username or parts.password:
        raise InputError(f"{variable} holds credentials; give the token in its own variable")
    return url


@dataclass(frozen=True)
class ChatEndpoint:
    """Where the model is: base URL (``.../v1``), model name, optional bearer token."""

    url: str
    model: str
    token: str | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        url_var: str,
        model_var: str,
        auth_var: str,
        default_model: str | None = None,
    ) -> ChatEndpoint | None:
        """The endpoint the variables named ``*_var`` configure, or None when the URL's
        is unset (off). Without ``default_model`` the model is required.
        """
        base = environ.get(url_var, "").strip()
        if not base:
            return None
        name = environ.get(model_var, "").strip() or default_model
        if not name:
            raise InputError(f"{url_var} is set but {model_var} is not")
        token = environ.get(auth_var, "").strip() or None
        return cls(check_token_url(base, variable=url_var).rstrip("/"), name, token)


class ChatClient:
    """Chat completions on one endpoint, bounded in time, retries and answer bytes."""

    def __init__(
        self,
        endpoint: ChatEndpoint,
        *,
        timeout: float,
        max_answer_bytes: int = 4 << 20,
        retries: int = 0,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.retries = retries
        self._client = client

    def message(self, messages: Sequence[Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
        """The answer's ``choices[0].message`` (an object whose ``content`` is text or
        absent); ``extra`` goes into the request (``tools``, ``tool_choice``)."""
        payload = {
            "model": self.endpoint.model,
            "messages": list(messages),
            "temperature": 0,
            **extra,
        }
        headers = {"Content-Type": "application/json"}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token}"
        if self._client is not None:
            return self._post(self._client, payload, headers)
        with http_client(timeout=self.timeout) as client:
            return self._post(client, payload, headers)

    def text(self, prompt: str) -> str:
        """The answer's text to one user message."""
        content = self.message([{"role": "user", "content": prompt}]).get("content")
        if not isinstance(content, str):
            raise ChatError("the answer has no text content")
        return content

    def _post(
        self, client: httpx.Client, payload: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        url = f"{self.endpoint.url}/chat/completions"
        last = ""
        for _ in range(1 + self.retries):
            try:
                response = client.post(url, json=payload, headers=headers)
            except httpx.TimeoutException:
                last = f"the endpoint did not answer within {self.timeout:g} s"
                continue
            except httpx.HTTPError as exc:
                raise ChatError(f"cannot reach the endpoint: {type(exc).__name__}") from exc
            if response.status_code in RETRY_STATUS:
                last = f"the endpoint answered {response.status_code}"
                continue
            if response.status_code != 200:
                raise ChatError(f"the endpoint answered {response.status_code}")
            return self._parse(response.content)
        raise ChatError(last)

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            data = parse_json(
                body, where=self.endpoint.url, max_bytes=self.max_answer_bytes, what="the answer"
            )
        except KilnError as exc:
            raise ChatError(_one_line(str(exc))) from exc
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ChatError("the answer has no choices[0].message") from exc
        if not isinstance(message, dict):
            raise ChatError("the answer's message is not an object")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise ChatError("the answer's content is not text")
        return message


def _one_line(text: str, limit: int = 300) -> str:
    line = plain_line(text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
