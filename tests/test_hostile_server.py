"""A hostile server: what it says (error bodies, answers) reaches every report short and inert,
in real pytest sessions against a small server the test starts, serial and under xdist."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .support import TEST_KEY, qa_rows, write_jsonl

WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
SUITE = """
import pytest

@pytest.mark.distill_dataset({spec!r})
def test_answer(case, model):
    assert model.complete(case).text == case.expected
"""
REPORTS = ("--junitxml", "junit.xml", "--html", "report.html", "--distill-results", "results.json")


class HostileServer(ThreadingHTTPServer):
    """Answers every POST with `status` and `body` (JSON), whatever was asked."""

    def __init__(self, status: int, body: object) -> None:
        self.status, self.body = status, json.dumps(body).encode()
        self.posts = 0
        super().__init__(("127.0.0.1", 0), _Answer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Answer(BaseHTTPRequestHandler):
    server: HostileServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.posts += 1
        self.send_response(self.server.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[HostileServer]]:
    """Start hostile servers (OPENAI_BASE_URL points at the last one), stopped after the test."""
    started: list[HostileServer] = []

    class Started(HostileServer):
        def __init__(self, status: int, body: object) -> None:
            super().__init__(status, body)
            threading.Thread(target=self.serve_forever, daemon=True).start()
            started.append(self)
            monkeypatch.setenv("OPENAI_BASE_URL", self.url)
            monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)

    yield Started
    for server in started:
        server.shutdown()
        server.server_close()


def written(pytester: pytest.Pytester) -> dict[str, str]:
    """Every report the session wrote, by name."""
    return {name: (pytester.path / name).read_text(encoding="utf-8") for name in ("junit.xml", "report.html", "results.json")}


@WORKERS
def test_a_huge_error_body_is_capped_in_every_report_saying_how_much_was_cut(
        pytester: pytest.Pytester, hostile: type[HostileServer], tmp_path: Path, workers: list[str]) -> None:
    """A 5 MB error body over 8 tests made 40 MB of terminal, results and JUnit and 120 MB of HTML:
    each message now keeps its first 2,000 characters and says how many more were cut."""
    server = hostile(400, {"error": {"message": "x" * 5_000_000, "type": "invalid_request_error"}})
    pytester.makepyfile(SUITE.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(8)))))
    result = pytester.runpytest("-p", "no:cacheprovider", *REPORTS, *workers)
    result.assert_outcomes(errors=8)
    assert server.posts >= 8
    result.stdout.fnmatch_lines(["*(HTTP 400): Error code: 400 - *x… [[]*,* more characters cut[]]*"])
    terminal = result.stdout.str()
    assert len(terminal) < 200_000
    for name, text in written(pytester).items():
        assert len(text) < 2_000_000 if name == "report.html" else len(text) < 200_000, name
        assert "more characters cut" in text, name
