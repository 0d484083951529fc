"""Optional LLM re-ranker: an OpenAI-compatible chat endpoint may reorder the top 10.

Off unless ``KILN_RESEARCH_LLM_URL`` is set (base URL, https or http on loopback;
``/chat/completions`` is appended), with ``KILN_RESEARCH_LLM_MODEL`` and an optional
``KILN_RESEARCH_LLM_KEY``.
The model sees the advisory and the top 10 candidates (subject, files, first lines of
the message) and must answer a JSON list of candidate numbers, best first. It can only
reorder those 10: numbers outside them, repeats or anything that is not such a list
leave the rules' ranking as it was, and so do a timeout, an HTTP error or a rate limit
(429). The request and the answer's shape are ``kiln.net.chat``'s (the one
OpenAI-compatible client, shared with the factory's agent). Every call is logged
(``RerankLog``: prompt, raw answer, the order before and after, or why the answer was
ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kiln.errors import KilnError
from kiln.jsonlimits import parse_json
from kiln.net.chat import ChatClient, ChatEndpoint, ChatError
from kiln.research.finder import Ranked
from kiln.research.record import CveRecord

TOP = 10
MAX_ANSWER_BYTES = 256 << 10


@dataclass
class RerankLog:
    """What the re-ranker asked, what it heard, and what it changed."""

    prompt: str
    answer: str = ""
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    ignored: str | None = None

    def as_json(self) -> dict[str, object]:
        """The log entry as ``kiln research --json`` prints it."""
        return {
            "prompt": self.prompt,
            "answer": self.answer,
            "before": self.before,
            "after": self.after,
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class LlmReranker:
    """An OpenAI-compatible endpoint that may reorder the first ``TOP`` candidates."""

    url: str
    model: str
    key: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> LlmReranker | None:
        """The configured re-ranker, or None (the default: off)."""
        endpoint = ChatEndpoint.from_env(
            environ,
            url_var="KILN_RESEARCH_LLM_URL",
            model_var="KILN_RESEARCH_LLM_MODEL",
            auth_var="KILN_RESEARCH_LLM_KEY",
            default_model="default",
        )
        if endpoint is None:
            return None
        return cls(url=endpoint.url, model=endpoint.model, key=endpoint.token)

    def prompt(self, record: CveRecord, top: Sequence[Ranked]) -> str:
        """The question: the advisory and numbered candidates."""
        lines = [
            f"Advisory {record.cve}: {' '.join(record.text.split())[:2000]}",
            "Which commit fixes it? Candidates:",
        ]
        for i, r in enumerate(top, 1):
            body = " ".join(r.commit.message.split())[:300]
            lines.append(
                f"{i}. {r.commit.sha[:12]} files: {', '.join(r.commit.files[:8])} | {body}"
            )
        lines.append(
            f"Answer only a JSON list of the candidate numbers 1-{len(top)}, most likely fix first."
        )
        return "\n".join(lines)

    def _ask(self, prompt: str) -> str:
        client = ChatClient(
            ChatEndpoint(self.url, self.model, self.key),
            timeout=self.timeout,
            max_answer_bytes=MAX_ANSWER_BYTES,
        )
        return client.text(prompt)

    def rerank(self, record: CveRecord, ranked: Sequence[Ranked]) -> tuple[list[Ranked], RerankLog]:
        """``ranked`` with its first ``TOP`` reordered by the model, or unchanged."""
        top = list(ranked[:TOP])
        log = RerankLog(prompt=self.prompt(record, top), before=[r.commit.sha for r in top])
        log.after = list(log.before)
        try:
            log.answer = self._ask(log.prompt)
            order = _order(log.answer, len(top))
        except (ValueError, TypeError, ChatError) as exc:
            log.ignored = str(exc) or type(exc).__name__
            return list(ranked), log
        chosen = [top[i - 1] for i in order]
        chosen += [r for r in top if r not in chosen]
        log.after = [r.commit.sha for r in chosen]
        return chosen + list(ranked[TOP:]), log


def _order(answer: str, n: int) -> list[int]:
    """The candidate numbers of an answer: a JSON list of distinct integers 1..n."""
    match = re.search(r"\[[^\[\]]*\]", answer)
    if not match:
        raise ValueError("the answer holds no JSON list")
    try:
        values = parse_json(match.group(0), where="the answer", max_bytes=4096, what="the list")
    except KilnError as exc:
        raise ValueError("the answer's list is not JSON") from exc
    if not isinstance(values, list):
        raise TypeError("the answer's list is not JSON")
    if (
        not values
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        or len(set(values)) != len(values)
        or not all(1 <= v <= n for v in values)
    ):
        raise ValueError(f"the answer is not a list of distinct candidate numbers 1-{n}")
    return list(values)
