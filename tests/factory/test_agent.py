"""The self-healing agent against a scripted fake endpoint: a real HTTP server on loopback.

No language model is reachable here, so the endpoint is a local server answering the
OpenAI chat-completions shape from a script (tool calls, a final word, garbage,
timeouts, 500s); the agent talks to it through kiln.net's real HTTP client. Every test
fails if the behaviour it names breaks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import InputError
from kiln.factory.agent import (
    Agent,
    AgentConfig,
    Failure,
    Ledger,
    RerunResult,
    agent_from_env,
)
from kiln.forge.evidence import Evidence, render_markdown

LOG = "dpkg-buildpackage: error: Build-Depends missing: libfoo-dev\n" * 3


class Endpoint:
    """A scripted chat-completions server: each POST gets the next scripted answer."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.requests.append(
                    {
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        **json.loads(self.rfile.read(length)),
                    }
                )
                step: dict[str, Any] = (
                    endpoint.script.pop(0) if endpoint.script else {"status": 500}
                )
                if "sleep" in step:
                    time.sleep(step["sleep"])
                body = (
                    step["raw"].encode()
                    if "raw" in step
                    else json.dumps(step.get("json", {})).encode()
                )
                try:
                    self.send_response(step.get("status", 200))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    """A completion asking for ``calls`` (arguments as an object, or a raw string)."""
    return {
        "json": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{n}",
                                "type": "function",
                                "function": {
                                    "name": name,
                                    "arguments": args
                                    if isinstance(args, str)
                                    else json.dumps(args),
                                },
                            }
                            for n, (name, args) in enumerate(calls)
                        ],
                    },
                }
            ],
        }
    }


def final(text: str) -> dict[str, Any]:
    return {
        "json": {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ]
        }
    }


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "worktree"
    (root / "images").mkdir(parents=True)
    (root / "recipes" / "zlib").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "images" / "python.yaml").write_text("name: python\npackages: [libfoo1]\n")
    (root / "recipes" / "zlib" / "recipe.yaml").write_text("build-depends: []\n")
    (root / "src" / "secret.py").write_text("TOKEN = 1\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    (root / "recipes" / "link.yaml").symlink_to(tmp_path / "outside.txt")
    (root / "vex").symlink_to(tmp_path)
    return root


def make_agent(endpoint: Endpoint, tmp_path: Path, **caps: Any) -> Agent:
    config = AgentConfig(
        endpoint.url, "scripted", "agent-token", timeout=caps.pop("timeout", 5.0), **caps
    )
    return Agent(config, ledger=Ledger(tmp_path / "state" / "ledger.json"))


FAILURE = Failure("zlib", "backport", "gen1", "package build", LOG)


@pytest.fixture
def serve() -> Iterator[Any]:
    made: list[Endpoint] = []

    def start(script: list[dict[str, Any]]) -> Endpoint:
        made.append(Endpoint(script))
        return made[-1]

    yield start
    for endpoint in made:
        endpoint.close()


def test_off_without_an_endpoint(tmp_path: Path) -> None:
    assert agent_from_env({}, state=tmp_path) is None
    with pytest.raises(InputError, match="KILN_AGENT_MODEL"):
        agent_from_env({"KILN_AGENT_URL": "http://127.0.0.1:9/v1"}, state=tmp_path)
    with pytest.raises(InputError, match="would send the token in clear text"):
        agent_from_env(
            {"KILN_AGENT_URL": "http://llm.invalid/v1", "KILN_AGENT_MODEL": "m"}, state=tmp_path
        )


def test_a_repair_reads_edits_reruns_and_records_everything(
    serve: Any, worktree: Path, tmp_path: Path
) -> None:
    fixed_recipe = "build-depends: [libfoo-dev]\n"
    endpoint = serve(
        [
            tool_calls(("read_log", {"offset": 0, "length": 60}), ("list_files", {})),
            tool_calls(("read_file", {"path": "recipes/zlib/recipe.yaml"})),
            tool_calls(
                ("write_file", {"path": "recipes/zlib/recipe.yaml", "content": fixed_recipe})
            ),
            tool_calls(("rerun_step", {})),
        ]
    )
    reruns: list[str] = []

    def rerun() -> RerunResult:
        text = (worktree / "recipes" / "zlib" / "recipe.yaml").read_text()
        reruns.append(text)
        return RerunResult("libfoo-dev" in text, "build ok\n")

    outcome = make_agent(endpoint, tmp_path).repair(FAILURE, worktree, rerun)
    assert outcome.fixed, outcome.reason
    assert outcome.changed == {"recipes/zlib/recipe.yaml": fixed_recipe.encode()}
    assert (outcome.attempts, outcome.tool_calls) == (1, 5)
    assert reruns == [fixed_recipe]
    # the model saw the tool results: the log chunk and the allowed files only
    second = endpoint.requests[1]["messages"]
    tool_results = [m["content"] for m in second if m["role"] == "tool"]
    assert tool_results[0] == LOG[:60]
    assert tool_results[1] == "images/python.yaml\nrecipes/zlib/recipe.yaml"
    assert endpoint.requests[0]["path"] == "/v1/chat/completions"
    assert endpoint.requests[0]["auth"] == "Bearer agent-token"
    assert [t["function"]["name"] for t in endpoint.requests[0]["tools"]] == [
        "read_log",
        "list_files",
        "read_file",
        "write_file",
        "rerun_step",
    ]
    kinds = [(e.kind, e.name) for e in outcome.transcript]
    assert kinds == [
        ("completion", "scripted"),
        ("tool", "read_log"),
        ("tool", "list_files"),
        ("completion", "scripted"),
        ("tool", "read_file"),
        ("completion", "scripted"),
        ("tool", "write_file"),
        ("completion", "scripted"),
        ("tool", "rerun_step"),
    ]
    assert all(e.digest.startswith("sha256:") for e in outcome.transcript)
    assert outcome.transcript[0].prompt.startswith("system: You repair a failed step")
    assert outcome.transcript[0].detail == "calls: read_log, list_files"
    assert outcome.transcript[3].prompt.startswith("assistant:  | tool: dpkg-buildpackage")
    assert "<28 chars>" in outcome.transcript[6].detail  # content recorded by size
    body = render_markdown(Evidence("zlib", "backport", "gen1", agent=outcome.evidence()))
    assert "### Agent transcript" in body
    assert "made 9 recorded call(s)" in body
    assert json.loads(outcome.to_json())["changed"]["recipes/zlib/recipe.yaml"].startswith(
        "sha256:"
    )


@pytest.mark.parametrize(
    ("tool", "args", "why"),
    [
        ("write_file", {"path": "../outside.txt", "content": "x"}, "not a plain relative path"),
        ("write_file", {"path": "/etc/passwd", "content": "x"}, "not a plain relative path"),
        (
            "write_file",
            {"path": "images/../src/secret.py", "content": "x"},
            "not a plain relative path",
        ),
        ("write_file", {"path": "src/secret.py", "content": "x"}, "outside images"),
        ("write_file", {"path": "images/sub/x.yaml", "content": "x"}, "outside images"),
        ("write_file", {"path": "recipes/link.yaml", "content": "x"}, "symbolic link"),
        ("write_file", {"path": "vex/outside.txt", "content": "x"}, "symbolic link"),
        ("read_file", {"path": "vex/outside.txt"}, "symbolic link"),
        ("write_file", {"path": "images/python.yaml", "content": 7}, "content must be a string"),
        ("read_log", {"offset": -1}, "non-negative"),
        ("format_disk", {}, "there is no tool 'format_disk'"),
        ("read_file", "{not json", "arguments are not a JSON object"),
    ],
)
def test_tool_calls_outside_the_rules_are_refused(  # noqa: PLR0917 (fixtures + parameters)
    serve: Any, worktree: Path, tmp_path: Path, tool: str, args: Any, why: str
) -> None:
    endpoint = serve([tool_calls((tool, args)), final("I cannot fix this.")])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    outcome = make_agent(endpoint, tmp_path).repair(
        FAILURE, worktree, lambda: RerunResult(True, "")
    )
    assert not outcome.fixed
    assert outcome.reason == "the agent gave up: I cannot fix this."
    refused = next(m for m in endpoint.requests[1]["messages"] if m["role"] == "tool")["content"]
    assert refused.startswith("error: ")
    assert why in refused
    assert outcome.transcript[1].outcome == "refused"
    after = {p: p.read_bytes() for p in before}
    assert after == before
    assert outcome.changed == {}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"raw": "<html>502 Bad Gateway"}, "is not JSON"),
        ({"json": {"choices": []}}, "has no choices[0].message"),
        ({"json": {"choices": [{"message": {"content": 5}}]}}, "content is not text"),
        (
            {"json": {"choices": [{"message": {"tool_calls": [{"id": 1}]}}]}},
            "tool_calls are malformed",
        ),
        ({"status": 401, "json": {"error": "bad key"}}, "the endpoint answered 401"),
    ],
)
def test_garbage_answers_end_the_repair_with_the_reason(
    serve: Any, worktree: Path, tmp_path: Path, answer: dict[str, Any], reason: str
) -> None:
    endpoint = serve([answer])
    outcome = make_agent(endpoint, tmp_path).repair(
        FAILURE, worktree, lambda: RerunResult(True, "")
    )
    assert not outcome.fixed
    assert reason in outcome.reason
    assert outcome.transcript[-1].outcome == outcome.reason.removeprefix("agent stopped: ")


def test_a_timeout_is_retried_once_then_ends_the_repair(
    serve: Any, worktree: Path, tmp_path: Path
) -> None:
    endpoint = serve([{"sleep": 1.5, **final("late")}, {"sleep": 1.5, **final("late")}])
    outcome = make_agent(endpoint, tmp_path, timeout=0.5).repair(
        FAILURE, worktree, lambda: RerunResult(True, "")
    )
    assert outcome.reason == "agent stopped: the endpoint did not answer within 0.5 s"
    assert len(endpoint.requests) == 2


def test_a_500_is_retried(serve: Any, worktree: Path, tmp_path: Path) -> None:
    endpoint = serve([{"status": 500}, tool_calls(("rerun_step", {}))])
    outcome = make_agent(endpoint, tmp_path).repair(
        FAILURE, worktree, lambda: RerunResult(True, "ok")
    )
    assert outcome.fixed
    assert len(endpoint.requests) == 2


def test_the_attempt_cap_holds_across_repairs_of_one_generation(
    serve: Any, worktree: Path, tmp_path: Path
) -> None:
    endpoint = serve([tool_calls(("rerun_step", {})), tool_calls(("rerun_step", {}))])
    agent = make_agent(endpoint, tmp_path, max_attempts=1)
    runs: list[int] = []

    def rerun() -> RerunResult:
        runs.append(1)
        return RerunResult(False, "still failing\n")

    first = agent.repair(FAILURE, worktree, rerun)
    assert first.reason == "the agent's attempt cap was reached"
    second = agent.repair(FAILURE, worktree, rerun)
    assert second.reason == "the agent's budget for generation gen1 is spent"
    assert len(runs) == 1
    assert len(endpoint.requests) == 1  # the second repair never called the model
    other = agent.repair(Failure("zlib", "backport", "gen2", "package build", LOG), worktree, rerun)
    assert other.attempts == 1  # a new generation has its own budget


def test_the_tool_call_cap(serve: Any, worktree: Path, tmp_path: Path) -> None:
    endpoint = serve([tool_calls(("list_files", {}), ("list_files", {}), ("list_files", {}))])
    outcome = make_agent(endpoint, tmp_path, max_tool_calls=2).repair(
        FAILURE, worktree, lambda: RerunResult(True, "")
    )
    assert outcome.reason == "the agent's tool-call cap was reached"
    assert outcome.tool_calls == 2


@pytest.mark.parametrize(
    "content", [b"[1, 2]", b'{"zlib/backport/gen1/x": {"attempts": "many"}}', b"{not json"]
)
def test_a_corrupt_ledger_is_an_input_error(
    serve: Any, worktree: Path, tmp_path: Path, content: bytes
) -> None:
    endpoint = serve([])
    agent = make_agent(endpoint, tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ledger.json").write_bytes(content)
    with pytest.raises(InputError, match="ledger"):
        agent.repair(FAILURE, worktree, lambda: RerunResult(True, ""))
    assert endpoint.requests == []


def test_an_unreadable_file_is_a_refused_call(serve: Any, worktree: Path, tmp_path: Path) -> None:
    (worktree / "images" / "big.yaml").write_bytes(b"x" * (256 * 1024 + 1))
    endpoint = serve([tool_calls(("read_file", {"path": "images/big.yaml"})), final("stop")])
    outcome = make_agent(endpoint, tmp_path).repair(
        FAILURE, worktree, lambda: RerunResult(True, "")
    )
    refused = next(m for m in endpoint.requests[1]["messages"] if m["role"] == "tool")
    assert refused["content"] == "error: 'images/big.yaml' is larger than 262144 bytes"
    assert outcome.transcript[1].outcome == "refused"
