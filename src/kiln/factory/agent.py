"""The self-healing agent (issue 16 item 6; optional, off by default).

When a remediation step fails (a bump breaks a test, a patch needs a context fix, a
recipe needs a build-dependency), a language model reached through any
OpenAI-compatible chat-completions endpoint may try to repair it inside the pull
request's worktree, with narrow, validated tools only:

- ``read_log(offset, length)``: the failing step's log, at most ``MAX_LOG_CHUNK`` bytes
  a call;
- ``list_files()``, ``read_file(path)``, ``write_file(path, content)``: only
  ``images/*.yaml``, ``images/*.lock.json``, ``recipes/**`` and ``vex/**`` of the
  worktree (no ``..``, no absolute path, no symlink anywhere on the way, bounded sizes;
  writes are atomic);
- ``rerun_step()``: the factory's callback that reruns the failed step; its success
  ends the repair.

Caps: ``max_attempts`` reruns and ``max_tool_calls`` tool calls per generation,
counted in a ledger file (so a second repair of the same generation cannot spend
more), and ``max_turns`` model calls. Every model call (a digest of the prompt sent, the
answer) and every tool call (name, arguments, a digest of the result) is recorded in
the transcript, which goes into the pull request's evidence. The agent never merges,
commits or pushes: the factory puts the changed files into the pull request and a
human reviews it. A broken endpoint (timeout, 5xx, an answer that is not the
documented shape) ends the repair with the reason recorded; it never crashes the loop.

The HTTP side (configuration checks, request, timeout, one retry of a timeout or a
retryable status, the bounded answer and its ``choices[0].message`` shape) is
``kiln.net.chat``, the one OpenAI-compatible client (shared with the research agent's
LLM re-ranker); this module checks the tool calls.

Configuration: ``KILN_AGENT_URL`` (the API base, e.g. ``https://host/v1``; https, or
http on loopback), ``KILN_AGENT_MODEL``, ``KILN_AGENT_TOKEN`` (optional). With no URL
the agent is off and the factory behaves exactly as without it.

API: https://platform.openai.com/docs/api-reference/chat/create (``tools``,
``tool_calls``, ``role: tool`` messages).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kiln.errors import InputError
from kiln.fileio import atomic_write
from kiln.forge.evidence import AgentStep
from kiln.jsonlimits import read_json_file
from kiln.net import http_client
from kiln.net.chat import ChatClient, ChatEndpoint, ChatError
from kiln.text import plain_line

MAX_LOG_CHUNK = 16 * 1024
MAX_FILE_BYTES = 256 * 1024
MAX_ANSWER_BYTES = 4 * 1024 * 1024
ALLOWED = ("images/*.yaml", "images/*.lock.json", "recipes/**", "vex/**")

_SYSTEM = (
    "You repair a failed step of kiln, a builder of minimal Debian-based container "
    "images. A change (a version bump or a backported patch) made the step fail. Use "
    "the tools: read the failing log, read and edit only the image specs, locks, "
    "recipes, patches and VEX files, then rerun the step. Make the smallest change "
    "that fixes the failure; do not disable tests. Stop when the rerun passes or when "
    "you cannot fix it, and say why in one sentence."
)


@dataclass(frozen=True)
class AgentConfig:
    """Where the model is and how much it may do per generation."""

    url: str
    model: str
    token: str | None = None
    max_attempts: int = 3
    max_tool_calls: int = 24
    max_turns: int = 16
    timeout: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AgentConfig | None:
        """The configured agent, or None when ``KILN_AGENT_URL`` is unset (agent off)."""
        endpoint = ChatEndpoint.from_env(
            environ, url_var="KILN_AGENT_URL", model_var="KILN_AGENT_MODEL",
            auth_var="KILN_AGENT_TOKEN",
        )  # fmt: skip
        return None if endpoint is None else cls(endpoint.url, endpoint.model, endpoint.token)

    @property
    def endpoint(self) -> ChatEndpoint:
        return ChatEndpoint(self.url, self.model, self.token)


@dataclass(frozen=True)
class RerunResult:
    """What rerunning the failed step gave: passed or not, and its log."""

    ok: bool
    log: str


@dataclass(frozen=True)
class Failure:
    """The failed step the agent is asked to repair."""

    image: str
    kind: str
    generation: str
    step: str
    log: str


@dataclass(frozen=True)
class TranscriptEntry:
    """One recorded call: a model completion or a tool call."""

    kind: str  # "completion" or "tool"
    name: str  # the model, or the tool
    detail: str  # the answer (text, or the tools it asked for), or the tool's arguments
    digest: str  # sha256 of the whole prompt sent, or of the tool's result
    outcome: str = "ok"
    prompt: str = ""  # a completion's new input since the last one (bounded, one line)


@dataclass(frozen=True)
class AgentOutcome:
    """How a repair ended: fixed or not, why, what changed, and the whole transcript."""

    fixed: bool
    reason: str
    attempts: int
    tool_calls: int
    changed: Mapping[str, bytes] = field(default_factory=dict)
    transcript: tuple[TranscriptEntry, ...] = ()

    def evidence(self) -> tuple[AgentStep, ...]:
        """The transcript as the pull request evidence's agent steps."""
        return tuple(
            AgentStep(f"{e.kind}:{e.name}", f"{e.detail} [{e.outcome}]", e.digest)
            for e in self.transcript
        )

    def to_json(self) -> bytes:
        """The transcript and outcome as JSON (changed files by name and digest)."""
        data = {
            "fixed": self.fixed,
            "reason": self.reason,
            "attempts": self.attempts,
            "tool_calls": self.tool_calls,
            "changed": {p: _digest(b) for p, b in sorted(self.changed.items())},
            "transcript": [asdict(e) for e in self.transcript],
        }
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def _digest(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _one_line(text: str, limit: int = 300) -> str:
    line = plain_line(text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ToolError(Exception):
    """A tool call the agent may not make or made wrongly; told to the model, not raised."""


class Worktree:
    """The files of the pull request's worktree the agent may read and edit."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.changed: dict[str, bytes] = {}

    def check(self, path: object) -> Path:
        """``path`` as a file under the root, if allowed; else ``ToolError`` saying why."""
        if not isinstance(path, str) or not path or len(path) > 300:
            raise ToolError("path must be a non-empty relative path")
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise ToolError(f"{path!r} is not a plain relative path")
        if not any(fnmatch.fnmatchcase(path, pattern) for pattern in ALLOWED) or (
            path.startswith("images/") and len(parts) != 2
        ):
            raise ToolError(f"{path!r} is outside {', '.join(ALLOWED)}")
        current = self.root
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise ToolError(f"{path!r} goes through a symbolic link")
        if not current.resolve().is_relative_to(self.root):
            raise ToolError(f"{path!r} leaves the worktree")
        return current

    def list_files(self) -> list[str]:
        """Every file the agent may read, sorted."""
        out = []
        for directory in ("images", "recipes", "vex"):
            base = self.root / directory
            if not base.is_dir() or base.is_symlink():
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
                for name in filenames:
                    rel = (Path(dirpath) / name).relative_to(self.root).as_posix()
                    try:
                        self.check(rel)
                    except ToolError:
                        continue
                    out.append(rel)
        return sorted(out)

    def read(self, path: object) -> str:
        """The text of an allowed file (bounded)."""
        target = self.check(path)
        if not target.is_file():
            raise ToolError(f"{path!r} does not exist")
        try:
            with target.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ToolError(f"cannot read {path!r}: {exc.strerror}") from exc
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
        return data.decode("utf-8", "replace")

    def write(self, path: object, content: object) -> str:
        """Replace an allowed file's content (atomically); a summary for the model."""
        target = self.check(path)
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        data = content.encode()
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"content is larger than {MAX_FILE_BYTES} bytes")
        if target.exists() and not target.is_file():
            raise ToolError(f"{path!r} is not a regular file")
        try:
            atomic_write(target, data)
        except OSError as exc:
            raise ToolError(f"cannot write {path!r}: {exc.strerror}") from exc
        assert isinstance(path, str)  # noqa: S101 (check() accepted only a str)
        self.changed[path] = data
        return f"wrote {len(data)} bytes to {path}"


class Ledger:
    """Attempts and tool calls already spent per generation, in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, int]]:
        if not self.path.exists():
            return {}
        data = read_json_file(self.path, max_bytes=1 << 22, what="the agent ledger")
        counts = ("attempts", "tool_calls")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and all(type(v.get(c, 0)) is int for c in counts)
            for v in data.values()
        ):
            raise InputError(
                f"{self.path}: the agent ledger is not a map of generations to counts",
                hint="delete it to reset the agent's budgets",
            )
        return {str(k): {c: int(v.get(c, 0)) for c in counts} for k, v in data.items()}

    def spent(self, key: str) -> tuple[int, int]:
        """(attempts, tool calls) spent on ``key`` so far."""
        entry = self._read().get(key, {})
        return entry.get("attempts", 0), entry.get("tool_calls", 0)

    def add(self, key: str, attempts: int, tool_calls: int) -> None:
        """Add what one repair spent."""
        data = self._read()
        entry = data.setdefault(key, {"attempts": 0, "tool_calls": 0})
        entry["attempts"] += attempts
        entry["tool_calls"] += tool_calls
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")


_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "read_log",
            "description": f"Read the failing step's log, at most {MAX_LOG_CHUNK} bytes.",
            "parameters": {
                "type": "object",
                "properties": {
                    "offset": {"type": "integer", "minimum": 0},
                    "length": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_CHUNK},
                },
                "required": [],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "list_files",
            "description": "List the spec, lock, recipe, patch and VEX files you may read.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read one file listed by list_files.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": f"Replace a file's whole content ({', '.join(ALLOWED)} only).",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "rerun_step",
            "description": "Rerun the failed step with your edits; returns its result.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]


class _StopError(Exception):
    """The repair ends here, with this reason."""


class Agent:
    """The repair loop over an OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        ledger: Ledger,
        client: httpx.Client | None = None,
    ) -> None:
        self.config = config
        self._ledger = ledger
        self._chat = ChatClient(
            config.endpoint,
            timeout=config.timeout,
            max_answer_bytes=MAX_ANSWER_BYTES,
            retries=1,  # a timeout or a retryable status (429, 5xx) is tried once more
            client=client or http_client(timeout=config.timeout),
        )

    def repair(
        self, failure: Failure, worktree: Path, rerun: Callable[[], RerunResult]
    ) -> AgentOutcome:
        """Try to repair ``failure`` in ``worktree``; the outcome with its transcript."""
        key = f"{failure.image}/{failure.kind}/{failure.generation}/{failure.step}"
        spent_attempts, spent_calls = self._ledger.spent(key)
        attempts_left = self.config.max_attempts - spent_attempts
        calls_left = self.config.max_tool_calls - spent_calls
        if attempts_left <= 0 or calls_left <= 0:
            return AgentOutcome(
                False, f"the agent's budget for generation {failure.generation} is spent", 0, 0
            )
        run = _Run(
            self,
            failure,
            worktree=Worktree(worktree),
            rerun=rerun,
            attempts_left=attempts_left,
            calls_left=calls_left,
        )
        try:
            outcome = run.loop()
        finally:
            self._ledger.add(key, run.attempts, run.tool_calls)
        return outcome

    def complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One chat completion: the assistant message, or ``_StopError`` saying what broke."""
        try:
            message = self._chat.message(messages, tools=_TOOLS, tool_choice="auto")
        except ChatError as exc:
            raise _StopError(str(exc)) from exc
        return _assistant_message(message)


def _assistant_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant turn of ``message`` (``kiln.net.chat`` checked it is an object with
    text content or none); ``_StopError`` when its ``tool_calls`` are malformed."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("id"), str)
        and isinstance(c.get("function"), dict)
        and isinstance(c["function"].get("name"), str)
        and isinstance(c["function"].get("arguments", "{}"), str)
        for c in calls
    ):
        raise _StopError("the answer's tool_calls are malformed")
    content = message.get("content")
    if calls:
        return {"role": "assistant", "content": content, "tool_calls": calls}
    return {"role": "assistant", "content": content or ""}


def _arguments(raw: str) -> dict[str, Any] | None:
    if len(raw) > 2 * MAX_FILE_BYTES:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _Run:
    """One repair: the conversation, the counters and the transcript."""

    def __init__(
        self,
        agent: Agent,
        failure: Failure,
        *,
        worktree: Worktree,
        rerun: Callable[[], RerunResult],
        attempts_left: int,
        calls_left: int,
    ) -> None:
        self.agent = agent
        self.failure = failure
        self.worktree = worktree
        self.rerun = rerun
        self.attempts_left = attempts_left
        self.calls_left = calls_left
        self.attempts = 0
        self.tool_calls = 0
        self.transcript: list[TranscriptEntry] = []
        self.log = failure.log

    def outcome(self, fixed: bool, reason: str) -> AgentOutcome:
        return AgentOutcome(
            fixed,
            reason,
            self.attempts,
            self.tool_calls,
            dict(self.worktree.changed),
            tuple(self.transcript),
        )

    def loop(self) -> AgentOutcome:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _SYSTEM},
            {
                "role": "user",
                "content": (
                    f"The {self.failure.kind} of image {self.failure.image} failed at step "
                    f"{self.failure.step!r}. The log is {len(self.log.encode())} bytes; "
                    "read it with read_log."
                ),
            },
        ]
        model = self.agent.config.model
        sent = 0
        for _ in range(self.agent.config.max_turns):
            prompt_digest = _digest(json.dumps(messages, sort_keys=True))
            prompt = _one_line(
                " | ".join(f"{m['role']}: {m.get('content') or ''}" for m in messages[sent:]),
                1000,
            )
            sent = len(messages)
            try:
                message = self.agent.complete(messages)
            except _StopError as stop:
                self.transcript.append(
                    TranscriptEntry("completion", model, "", prompt_digest, str(stop), prompt)
                )
                return self.outcome(False, f"agent stopped: {stop}")
            calls = message.get("tool_calls", [])
            said = message.get("content") or ""
            asked = ", ".join(str(c["function"]["name"]) for c in calls)
            detail = _one_line(" ".join(filter(None, (said, asked and f"calls: {asked}"))))
            self.transcript.append(
                TranscriptEntry("completion", model, detail, prompt_digest, "ok", prompt)
            )
            messages.append(message)
            if not calls:
                return self.outcome(
                    False, f"the agent gave up: {_one_line(said, 200) or 'no reason'}"
                )
            for call in calls:
                if self.tool_calls >= self.calls_left:
                    return self.outcome(False, "the agent's tool-call cap was reached")
                result, fixed = self.call(call)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
                if fixed:
                    return self.outcome(True, "the rerun of the step passed")
                if self.attempts >= self.attempts_left and call["function"]["name"] == "rerun_step":
                    return self.outcome(False, "the agent's attempt cap was reached")
        return self.outcome(False, f"no fix after {self.agent.config.max_turns} model calls")

    def call(self, call: Mapping[str, Any]) -> tuple[str, bool]:
        """Run one tool call; its result for the model, and whether the step now passes."""
        self.tool_calls += 1
        name = call["function"]["name"]
        raw = call["function"].get("arguments") or "{}"
        args = _arguments(raw)
        fixed, outcome = False, "ok"
        try:
            if args is None:
                raise ToolError("arguments are not a JSON object")  # noqa: TRY301
            result, fixed = self.dispatch(name, args)
        except ToolError as exc:
            result, outcome = f"error: {exc}", "refused"
        # a file's content is recorded by size: the changed files travel in the outcome
        shown = {
            k: (f"<{len(str(v))} chars>" if k == "content" else v) for k, v in (args or {}).items()
        }
        self.transcript.append(
            TranscriptEntry(
                "tool",
                _one_line(str(name), 40),
                _one_line(json.dumps(shown) if args is not None else raw),
                _digest(result),
                outcome,
            )
        )
        return result, fixed

    def dispatch(self, name: str, args: Mapping[str, Any]) -> tuple[str, bool]:
        """The result of tool ``name`` (``ToolError`` for a refused call)."""
        match name:
            case "read_log":
                offset, length = args.get("offset", 0), args.get("length", MAX_LOG_CHUNK)
                if (
                    not (isinstance(offset, int) and isinstance(length, int))
                    or offset < 0
                    or length < 1
                ):
                    raise ToolError("offset and length must be non-negative integers")
                data = self.log.encode()
                chunk = data[offset : offset + min(length, MAX_LOG_CHUNK)]
                return chunk.decode("utf-8", "replace") or "(end of log)", False
            case "list_files":
                return "\n".join(self.worktree.list_files()) or "(no files)", False
            case "read_file":
                return self.worktree.read(args.get("path")), False
            case "write_file":
                return self.worktree.write(args.get("path"), args.get("content")), False
            case "rerun_step":
                if self.attempts >= self.attempts_left:
                    raise ToolError("no rerun attempts left for this generation")
                self.attempts += 1
                result = self.rerun()
                self.log = result.log
                tail = result.log.encode()[-MAX_LOG_CHUNK:].decode("utf-8", "replace")
                verdict = "passed" if result.ok else "failed again; its new log replaces the old"
                return f"the step {verdict}.\n{tail}", result.ok
            case _:
                raise ToolError(f"there is no tool {name!r}")


def agent_from_env(
    environ: Mapping[str, str] = os.environ, *, state: Path, client: httpx.Client | None = None
) -> Agent | None:
    """The configured agent with its ledger in ``state``, or None when it is off."""
    config = AgentConfig.from_env(environ)
    if config is None:
        return None
    return Agent(config, ledger=Ledger(state / "agent-ledger.json"), client=client)
