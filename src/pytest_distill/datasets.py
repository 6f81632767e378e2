"""Dataset specs become cases: stored chat completions of the API, or JSONL files in the chat format
or in the OpenAI Evals registry format (`{"input": ..., "ideal": ...}`).

A case whose data is broken is not dropped: it becomes a `BrokenCase` that errors its own test with
the file and line (or the completion id), while the other cases still run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeout  # before 3.11 no builtin TimeoutError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import strict_json
from .atomic import write_atomic
from .errors import DistillError
from .jsonl import DEFAULT_MAX_LINE_BYTES, SETTING, BadLine, read_jsonl
from .models.client import ModelRuntime
from .models.types import Completion, ModelError, Usage
from .names import distinct
from .sealed import opened, seal

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
LIST_PARAMS = frozenset({"model", "limit", "order"})
PAGE_SIZE = 100
PROGRESS_TICK_S = 1.0
SHOWN_VALUES = 10
"""How many values of a metadata key a filter that selected nothing names."""
REGISTRY_KEYS = frozenset({"input", "ideal", "id"})
CHAT_FORMAT = 'the chat format {"messages": [...]}'
REGISTRY_FORMAT = 'the OpenAI Evals registry format {"input": [...] or "text", "ideal": "answer" or [...]}'
ID_LIMIT = 80
_UNSAFE_IN_ID = re.compile(r"[^\w.+=@,-]+")
_MARKUP_IN_ID = re.compile(r"[<>&\"'`\s\x00-\x1f\x7f-\x9f\[\]]+")
"""What a test id may not hold: markup, quotes, spaces, control characters, path and node separators."""
SPEC_JUNK = re.compile(r"""[;&='"\x00-\x1f]""")
"""What no filter key or value holds: a `;` or `&` is a mistyped separator, not part of a value."""


class DatasetError(DistillError):
    """A dataset that cannot be read at all, or a case in it that is broken."""


@dataclass(frozen=True)
class Case:
    """One test case: input messages, the reference answer, metadata, and where it came from."""

    id: str
    messages: list[dict[str, Any]]
    expected: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    origin_model: str | None = None
    """The model that produced the stored answer (stored completions only)."""
    origin_usage: Usage | None = None
    accepted: tuple[str, ...] = ()
    """Every accepted answer when there are several (`ideal` as a list); empty means `expected` alone."""

    @property
    def references(self) -> list[str]:
        """Every accepted answer, the first being `expected`: `[expected]` for one, `[]` for none."""
        if self.accepted:
            return list(self.accepted)
        return [] if self.expected is None else [self.expected]

    @property
    def question(self) -> str:
        """The last user message: what the model was asked."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    def replay(self, model: str) -> Completion:
        """The stored answer as a completion, for the model that gave it (no call is made)."""
        return Completion(text=self.expected or "", model=model, usage=self.origin_usage or Usage(),
                          latency_s=0.0, served_model=self.origin_model or model)

    def __hash__(self) -> int:
        return hash((self.source, self.id))

    def __repr__(self) -> str:
        return f"Case({self.id!r})"


@dataclass(frozen=True)
class BrokenCase:
    """A case that could not be read: its test errors with `problem`."""

    id: str
    source: str
    problem: str


@dataclass(frozen=True)
class DatasetSpec:
    text: str
    path: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    list_params: dict[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return self.path is None


def parse_spec(text: str, search_dirs: Sequence[Path]) -> DatasetSpec:
    """`stored[:KEY=VALUE,...]` or a path to a .jsonl file, looked up in `search_dirs` in order."""
    text = text.strip()
    if text == "stored" or text.startswith("stored:"):
        metadata: dict[str, str] = {}
        params: dict[str, Any] = {}
        for pair in filter(None, (part.strip() for part in text[len("stored:"):].split(","))):
            key, sep, value = (part.strip() for part in pair.partition("="))
            if not sep or not key or not value or SPEC_JUNK.search(key + value):
                raise DatasetError(f"dataset {text!r}: {pair!r} is not KEY=VALUE (filters are separated by commas; "
                                   "a key or value holds no ; & = quote or control character)")
            (params if key in LIST_PARAMS else metadata)[key] = value
        if "limit" in params:
            if not params["limit"].isdigit() or int(params["limit"]) < 1:
                raise DatasetError(f"dataset {text!r}: limit must be a whole number of at least 1")
            params["limit"] = int(params["limit"])
        if params.get("order", "asc") not in {"asc", "desc"}:
            raise DatasetError(f"dataset {text!r}: order must be asc or desc")
        return DatasetSpec(text, metadata=metadata, list_params=params)
    if not text.endswith(".jsonl"):
        raise DatasetError(f"dataset {text!r}: expected 'stored[:KEY=VALUE,...]' or a path to a .jsonl file")
    candidates = [Path(text)] if Path(text).is_absolute() else [base / text for base in search_dirs]
    for path in candidates:
        if path.is_file():
            return DatasetSpec(text, path=path.resolve())
    tried = ", ".join(str(path) for path in candidates)
    raise DatasetError(f"dataset {text!r}: no such file (looked for {tried})")


def param_ids(cases: Sequence[Case | BrokenCase]) -> list[str]:
    """The cases' ids as test ids: a run of anything but letters, digits and `_.+=@,-` becomes one `_`,
    so an id from data can hold no markup (pytest-html puts test ids into its page as HTML), control
    characters or path separators; long ids are cut, and ids that became equal get `-2`, `-3`, ... The
    original stays in `case.id` and in the reports."""
    return distinct([_UNSAFE_IN_ID.sub("_", case.id)[:ID_LIMIT].strip("_") or "case" for case in cases], "-")


def model_ids(models: Sequence[str]) -> list[str]:
    """The models under test as test ids: markup, quotes, spaces and control characters become `_`
    (pytest-html puts test ids into its page as HTML: `--model 'x<img onerror=...>'` must not run
    there); the `:` and `/` of `ft:`, `hf:org/name` and endpoint names stay. The name itself is unchanged
    everywhere else."""
    return distinct([_MARKUP_IN_ID.sub("_", model) or "model" for model in models], "-")


def _check_messages(messages: Any, key: str) -> None:
    """Raise ValueError unless `messages` is a non-empty list of chat messages with known roles."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"no messages: expected a non-empty list under {key!r}")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message {index} is not an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise ValueError(f"message {index} has unknown role {role!r:.60} (expected one of {', '.join(sorted(ROLES))})")
        content = message.get("content")
        if role != "assistant" and not isinstance(content, (str, list)):
            raise ValueError(f"message {index} ({role}) has no content" if content is None else
                             f"message {index} ({role}): content must be text or a list of parts, not {type(content).__name__}")
        if isinstance(content, list):
            _check_parts(content, f"message {index} ({role})")
        if "name" in message and not isinstance(message["name"], str):
            raise ValueError(f"message {index} ({role}): 'name' must be text, not {type(message['name']).__name__}")


def _check_parts(parts: list[Any], where: str) -> None:
    """Raise ValueError unless each content part is an object with a `type`, and a text part's `text`
    (a refusal part's `refusal`) is text: the API would refuse the request, failing the case's test
    instead of erroring it."""
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ValueError(f"{where}: content part {index} is not an object with a 'type'")
        for key in ("text", "refusal"):
            if (part["type"] == key or key in part) and not isinstance(part.get(key), str):
                raise ValueError(f"{where}: content part {index} ({part['type']}): {key!r} must be text, "
                                 f"not {type(part.get(key)).__name__}")


def case_from_messages(case_id: str, messages: Any, metadata: Any, source: str) -> Case:
    """Split chat-format messages into input and reference; raise ValueError saying what is wrong."""
    _check_messages(messages, "messages")
    if messages[-1]["role"] != "assistant":
        raise ValueError("no assistant answer: the last message must be the assistant's reference answer")
    expected = content_text(messages[-1].get("content"))
    if not expected.strip():
        raise ValueError("the assistant answer is empty")
    if not any(message["role"] == "user" for message in messages[:-1]):
        raise ValueError("no user message before the assistant answer")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    return Case(id=case_id, messages=[dict(m) for m in messages[:-1]], expected=expected,
                metadata=dict(metadata or {}), source=source)


def case_from_registry(case_id: str, data: dict[str, Any], source: str) -> Case:
    """A line of the OpenAI Evals registry format: `input` (messages, or a text that is the user's
    message) and `ideal` (one accepted answer or a list of them; absent for model-graded sets). Every
    other key goes to `.metadata`. Raise ValueError saying what is wrong."""
    given = data["input"]
    if isinstance(given, str):
        if not given.strip():
            raise ValueError("'input' is an empty text")
        messages: list[dict[str, Any]] = [{"role": "user", "content": given}]
    else:
        _check_messages(given, "input")
        messages = [dict(m) for m in given]
        if not any(message["role"] == "user" for message in messages):
            raise ValueError("no user message in 'input'")
    ideal = data.get("ideal")
    answers = [_answer_text(answer) for answer in (ideal if isinstance(ideal, list) else [] if ideal is None else [ideal])]
    if isinstance(ideal, list) and not answers:
        raise ValueError("'ideal' is an empty list: give at least one accepted answer")
    metadata = {key: value for key, value in data.items() if key not in REGISTRY_KEYS}
    return Case(id=case_id, messages=messages, expected=answers[0] if answers else None, metadata=metadata,
                source=source, accepted=tuple(answers) if len(answers) > 1 else ())


def _answer_text(answer: Any) -> str:
    """An accepted answer as text: a string as it is, anything else (a JSON answer) as compact JSON."""
    if isinstance(answer, str):
        return answer
    if answer is None:
        raise ValueError("'ideal' holds a null answer")
    return json.dumps(answer, ensure_ascii=False)


def _case_from_line(case_id: str, data: dict[str, Any], source: str) -> Case:
    if "messages" in data:
        return case_from_messages(case_id, data.get("messages"), data.get("metadata"), source)
    return case_from_registry(case_id, data, source)


def load_jsonl(path: Path, source: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> list[Case | BrokenCase]:
    """Every line of a JSONL file as a case, read a line at a time; a bad line (longer than
    `max_line_bytes`, not UTF-8, not strict JSON, not a case) becomes a BrokenCase naming file and line,
    and the other lines still run.

    A file none of whose lines is in either format (a CSV, another tool's JSONL) is one `DatasetError`
    for the file, not an error per line.
    """
    cases: list[Case | BrokenCase] = []
    seen: dict[str, int] = {}
    recognised, first_keys = 0, None
    try:
        for line in read_jsonl(path, max_line_bytes, SETTING):
            case_id = f"line{line.number}"
            if isinstance(line, BadLine):
                cases.append(BrokenCase(case_id, source, line.at(path)))
                continue
            data = line.data
            try:
                if "messages" not in data and "input" not in data:
                    first_keys = first_keys or sorted(data)
                    raise ValueError(f"neither {CHAT_FORMAT} nor {REGISTRY_FORMAT}: the line has keys {', '.join(sorted(data))}")
                recognised += 1
                case_id = _case_id(data.get("id"), case_id)
                if case_id in seen:
                    raise ValueError(f"id {case_id!r} is already used on line {seen[case_id]}")
                seen[case_id] = line.number
                cases.append(_case_from_line(case_id, data, source))
            except ValueError as exc:
                cases.append(BrokenCase(case_id, source, f"{path}:{line.number}: {exc}"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read: {exc}") from None
    if cases and not recognised:
        first = next(case for case in cases if isinstance(case, BrokenCase))
        keys = f" (its first object has keys {', '.join(first_keys)})" if first_keys else \
            f" (line {first.problem.removeprefix(f'{path}:')})"
        raise DatasetError(f"{path}: no line is a case in either format a dataset file takes, {CHAT_FORMAT} "
                           f"or {REGISTRY_FORMAT}{keys}")
    return cases


def _case_id(given: Any, default: str) -> str:
    """A line's own id (a string, or a whole number), else `line<N>`."""
    if given is None or given == "":
        return default
    if isinstance(given, str) or (isinstance(given, int) and not isinstance(given, bool)):
        return str(given)
    raise ValueError(f"'id' must be a string, not {type(given).__name__}")


class StoredCompletions:
    """Stored chat completions as cases. Their content never changes, so it is cached on disk by id:
    a second collection of the same set makes only the list calls. The first makes one messages call
    per completion; those run while the listing goes on, at most `--distill-concurrency` at once, since
    10,000 of them one after another would take most of an hour against the API."""

    def __init__(self, runtime: ModelRuntime, cache_dir: Path | None,
                 on_progress: Callable[[str, int, int, int], None] | None = None) -> None:
        self.runtime, self.cache_dir = runtime, cache_dir
        self.on_progress = on_progress
        """Told (spec, listed, fetched, to fetch) about once a second while the listing goes on or messages
        calls are awaited, on the collecting thread: a long collection can say how far it is."""
        self._next_tell = 0.0

    def load(self, spec: DatasetSpec) -> list[Case | BrokenCase]:
        """The cases in listing order; each fetched one is a case as soon as it arrives, so that only
        cases, not the SDK's completion objects, are kept until the last one is in."""
        cases: list[Case | BrokenCase | None] = []
        fetching: list[tuple[int, Future[Case | BrokenCase]]] = []
        pool = ThreadPoolExecutor(self.runtime.concurrency, thread_name_prefix="distill-stored")
        try:
            for completion in self._list(spec):
                case = self._cached_case(spec, completion)
                if case is None:
                    fetching.append((len(cases), pool.submit(self._fetched_case, spec, completion)))
                cases.append(case)
                self._tell(spec, len(cases), fetching)
            for index, fetched in fetching:
                while cases[index] is None:
                    try:
                        cases[index] = fetched.result(timeout=PROGRESS_TICK_S)
                    except WaitTimeout:
                        self._tell(spec, len(cases), fetching)
        finally:
            pool.shutdown(cancel_futures=True)
        return [case for case in cases if case is not None]

    def _tell(self, spec: DatasetSpec, listed: int, fetching: Sequence[tuple[int, Future[Any]]]) -> None:
        """At most once a tick (counting the fetched ones walks the list)."""
        now = time.monotonic()
        if self.on_progress is not None and now >= self._next_tell:
            self._next_tell = now + PROGRESS_TICK_S
            self.on_progress(spec.text, listed, sum(fetched.done() for _, fetched in fetching), len(fetching))

    def _cached_case(self, spec: DatasetSpec, completion: Any) -> Case | None:
        """The case of a stored completion fetched before, from the disk cache. Only good cases are
        cached, and an entry is sealed for its completion's id; one that makes no case, is not sealed
        for this id (damaged, copied, edited by hand), or whose answer and usage are not the listing's
        (the listing holds both) is a miss, fetched again."""
        path = self._cache_path(completion.id)
        try:
            content = opened(path.read_text(encoding="utf-8"), completion.id) if path is not None else None
        except (OSError, ValueError):
            return None
        if content is None or not isinstance(content.get("messages"), list) or not content["messages"] \
                or [content["messages"][-1], content.get("usage")] != list(_listed(completion)):
            return None
        case = self._case(spec, completion, content)
        return case if isinstance(case, Case) else None

    def _fetched_case(self, spec: DatasetSpec, completion: Any) -> Case | BrokenCase:
        """The case of a stored completion not cached yet. One whose messages call fails (deleted since it
        was listed, a server error, a malformed answer, a timeout) is a broken case, not the end of the set."""
        try:
            content = self._fetch(completion)
        except ModelError as exc:
            return BrokenCase(completion.id, spec.text, f"stored completion {completion.id}: {exc}")
        case = self._case(spec, completion, content)
        path = self._cache_path(completion.id)
        if isinstance(case, Case) and path is not None:
            write_atomic(path, seal(completion.id, content))
        return case

    @staticmethod
    def _case(spec: DatasetSpec, completion: Any, content: dict[str, Any]) -> Case | BrokenCase:
        try:
            # A dataset line was read as strict JSON; a stored completion's texts come from the SDK's parse.
            where = strict_json.lone_surrogate({"messages": content.get("messages"), "metadata": completion.metadata})
            if where is not None:
                raise ValueError(f"a lone surrogate in {where.removeprefix('$.')}: not Unicode text")
            case = case_from_messages(completion.id, content.get("messages"), completion.metadata, spec.text)
            usage = _usage(content.get("usage"))
        except ValueError as exc:
            return BrokenCase(completion.id, spec.text, f"stored completion {completion.id}: {exc}")
        return Case(case.id, case.messages, case.expected, case.metadata, spec.text, origin_model=completion.model,
                    origin_usage=usage)

    def _list(self, spec: DatasetSpec) -> Iterator[Any]:
        wanted = spec.list_params.get("limit")
        query: dict[str, Any] = {key: value for key, value in spec.list_params.items() if key != "limit"}
        if spec.metadata:
            query["metadata"] = spec.metadata
        query["limit"] = min(PAGE_SIZE, wanted or PAGE_SIZE)
        count = 0
        with self.runtime.api_errors("GET /chat/completions", spec.list_params.get("model", "")):
            for completion in self.runtime.sdk().chat.completions.list(**query):
                yield completion
                count += 1
                if wanted and count >= wanted:
                    return

    def values(self, spec: DatasetSpec) -> dict[str, list[str]]:
        """The values the latest stored completions (one page, the metadata filters left out) hold under each
        key the spec filters on: what a filter that selected nothing could have said instead."""
        seen: dict[str, set[str]] = {key: set() for key in spec.metadata}
        unfiltered = dataclasses.replace(spec, metadata={}, list_params={**spec.list_params, "limit": PAGE_SIZE})
        for completion in self._list(unfiltered):
            metadata = completion.metadata if isinstance(completion.metadata, dict) else {}
            for key, values in seen.items():
                value = metadata.get(key)
                if isinstance(value, str) and len(values) < SHOWN_VALUES:
                    values.add(value)
        return {key: sorted(values) for key, values in seen.items()}

    def _fetch(self, completion: Any) -> dict[str, Any]:
        """Input messages and answer of one stored completion from the API."""
        endpoint = f"GET /chat/completions/{completion.id}/messages"
        with self.runtime.api_errors(endpoint):
            inputs = [_message_dict(m) for m in self.runtime.sdk().chat.completions.messages.list(completion.id, limit=PAGE_SIZE)]
        answer, usage = _listed(completion)
        return {"messages": [*inputs, answer], "usage": usage}

    def _cache_path(self, completion_id: str) -> Path | None:
        if self.cache_dir is None or not completion_id.replace("-", "").replace("_", "").isalnum():
            return None
        return self.cache_dir / f"{completion_id}.json"


def _listed(completion: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the listing itself says of a stored completion: its answer as a message, and its usage."""
    answer = completion.choices[0].message if completion.choices else None
    usage = completion.usage
    return ({"role": "assistant", "content": getattr(answer, "content", None)},
            {name: getattr(usage, name, None) or 0 for name in ("prompt_tokens", "completion_tokens")})


def _message_dict(message: Any) -> dict[str, Any]:
    """A listed input message as a chat-format dict; one off the API's shape fails the case's checks."""
    data = {"role": getattr(message, "role", None), "content": getattr(message, "content", None)}
    if getattr(message, "name", None):
        data["name"] = message.name
    return data


def _usage(data: Any) -> Usage:
    """Token counts of a stored answer: whole numbers, or a ValueError."""
    counts = [data.get(name, 0) if isinstance(data, dict) else None for name in ("prompt_tokens", "completion_tokens")]
    whole = [count for count in counts if isinstance(count, int) and not isinstance(count, bool) and count >= 0]
    if len(whole) != len(counts):
        raise ValueError(f"usage is not token counts: {data!r:.80}")
    return Usage(*whole)


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, (bytes, dict)):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


if __name__ == "__main__":  # python -m pytest_distill.datasets split FILE --by KEY ...
    import sys

    from .split import main

    if sys.argv[1:2] != ["split"]:
        sys.exit("usage: python -m pytest_distill.datasets split FILE --by KEY [--test 0.2] [--seed N] [--min-per-value M]")
    sys.exit(main(sys.argv[2:]))
