"""The LLM re-ranker against a local fake OpenAI-compatible server (no LLM is reachable
here): a good answer reorders only the top 10; garbage, HTTP 500, 429 and a timeout
leave the rules' ranking as it was, and every call is logged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.errors import InputError, Location
from kiln.research.features import Features
from kiln.research.finder import Ranked
from kiln.research.gitrepo import Commit
from kiln.research.llm import LlmReranker
from kiln.research.record import record_from_json
from research.conftest import Upstream, record_json

ANSWERS: dict[str, tuple[int, str, float]] = {}
PROMPTS: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        PROMPTS.append(body["messages"][0]["content"])
        status, content, delay = ANSWERS[self.path.split("/")[1]]
        time.sleep(delay)
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        if content == "RAW":
            payload = b"<html>not json"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except BrokenPipeError:  # the client gave up (the timeout case)
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _ranked(n: int) -> list[Ranked]:
    out = []
    for i in range(n):
        commit = Commit(f"{i:040x}", 0, 0, f"commit {i}", ("a.c",), 1, 0, 0)
        out.append(Ranked(commit, float(n - i), Features({}), ("git",), {}))
    return out


@pytest.mark.parametrize(
    ("name", "answer", "moved"),
    [
        ("good", (200, "The fix is [3, 1]", 0.0), True),
        ("garbage", (200, "I think the second one, maybe", 0.0), False),
        ("outside", (200, "[11, 1]", 0.0), False),
        ("repeats", (200, "[2, 2]", 0.0), False),
        ("notjson", (200, "RAW", 0.0), False),
        ("error", (500, "[2]", 0.0), False),
        ("limited", (429, "[2]", 0.0), False),
        ("slow", (200, "[2]", 2.0), False),
    ],
)
def test_only_a_valid_answer_reorders_the_top_ten(
    server: str, name: str, answer: tuple[int, str, float], moved: bool
) -> None:
    ANSWERS[name] = answer
    record = record_from_json(record_json(), Location("t")).record
    ranked = _ranked(12)
    reranker = LlmReranker(url=f"{server}/{name}", model="fake", timeout=0.5)
    out, log = reranker.rerank(record, ranked)
    assert "CVE-2023-0001" in log.prompt
    assert log.prompt == PROMPTS[-1]
    assert out[10:] == ranked[10:]  # never past the top 10
    assert sorted(r.commit.sha for r in out) == sorted(r.commit.sha for r in ranked)
    if moved:
        assert [r.commit.message for r in out[:3]] == ["commit 2", "commit 0", "commit 1"]
        assert log.ignored is None
        assert log.after[0] == ranked[2].commit.sha
    else:
        assert out == ranked
        assert log.ignored
        assert log.after == log.before


def test_off_by_default() -> None:
    assert LlmReranker.from_environment({}) is None
    configured = LlmReranker.from_environment({"KILN_RESEARCH_LLM_URL": "http://127.0.0.1:1/v1/"})
    assert configured is not None
    assert configured.url == "http://127.0.0.1:1/v1"
    with pytest.raises(InputError, match="would send the token in clear text"):
        LlmReranker.from_environment({"KILN_RESEARCH_LLM_URL": "http://llm.example.org/v1"})
    with pytest.raises(InputError, match="holds credentials"):
        LlmReranker.from_environment({"KILN_RESEARCH_LLM_URL": "https://u:p@llm.example.org/v1"})
    keyed = LlmReranker.from_environment(
        {"KILN_RESEARCH_LLM_URL": "https://llm.example.org/v1", "KILN_RESEARCH_LLM_MODEL": "m",
         "KILN_RESEARCH_LLM_KEY": " k "}
    )  # fmt: skip
    assert keyed == LlmReranker(url="https://llm.example.org/v1", model="m", key="k")


def test_cli_logs_the_rerank_and_keeps_the_rules_order_on_garbage(
    server: str,
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ANSWERS["cli"] = (200, "no idea", 0.0)
    monkeypatch.setenv("KILN_RESEARCH_LLM_URL", f"{server}/cli")
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record_json()))
    args = ["research", "CVE-2023-0001", "--repo", str(upstream.work), "--record", str(path),
            "--json"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["llm_rerank"]["ignored"]
    assert out["llm_rerank"]["answer"] == "no idea"
    assert out["kiln"][0]["commit"] == upstream.fix
    assert "LLM re-ranker: ignored" in captured.err
