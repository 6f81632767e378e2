"""The values that model calls produce: what the rest of the package and the tests depend on.

Apart from the HTTP runtime (`client.py`), so that the cache, the `hf:` provider, datasets and the
ledger use these types without importing the runtime, and the runtime imports them without a circle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .. import strict_json
from ..errors import DistillError
from ..untrusted import printable

LOCAL_PREFIX = "hf:"
"""Models named `hf:...` run in this process (models/hf.py), not on the API."""
RECORDED_PREFIX = "recorded:"
"""Models named `recorded:PATH` answer from a file of recorded answers (models/recorded.py), without a call."""
RESERVED_ENDPOINT_NAMES = ("ft", "hf", "recorded")
"""`ft:` (a fine-tuned model's name), `hf:` and `recorded:` keep their meaning: no endpoint may be called so."""
APIS = ("chat", "responses")
"""How an endpoint's models are asked: POST /chat/completions or POST /responses."""
ENDPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
KEY_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]{0,15}(?:_[A-Z0-9]{1,16}){0,7}|[a-z][a-z0-9]{0,15}(?:_[a-z0-9]{1,16}){0,7}")
"""How an environment variable's name looks (GROQ_API_KEY: one case, words of at most 16 characters).
Anything else where a name is expected may be a pasted key (`gsk_…`, `AKIA…`), and is never shown."""


def shape_of(text: str) -> str:
    """What a text that may be a key is made of, said without any of its characters."""
    kinds = [kind for kind, present in (
        ("lower-case letters", any(c.islower() for c in text)), ("capitals", any(c.isupper() for c in text)),
        ("digits", any(c.isdigit() for c in text)), ("_", "_" in text), ("-", "-" in text),
        ("other characters", any(not (c.isalnum() or c in "_-") for c in text))) if present]
    return f"{len(text)} characters ({', '.join(kinds)})" if kinds else "empty"


@dataclass(frozen=True)
class Endpoint:
    """A server that models live on: `NAME:MODEL` is MODEL there (`name` "" is the default endpoint).

    `base_url` None means OPENAI_BASE_URL, else OpenAI's. The key is read from the environment
    variable `key_env` when the client is made (None: send no key); `key` is one given outright (the
    simulator's). Neither ever appears in a repr, so no traceback's locals can show a key.
    """

    name: str = ""
    base_url: str | None = None
    key_env: str | None = "OPENAI_API_KEY"
    key: str | None = field(default=None, repr=False, compare=False)
    api: str = "chat"
    """How its models are asked: `chat` (POST /chat/completions) or `responses` (POST /responses)."""


def url_problem(url: str) -> str | None:
    """What is wrong with a base URL (None when it can be used): a scheme, a host, a valid port, and
    nothing the SDK would mangle: a query or fragment ends up in the middle of every request's path, and
    a user name or password is sent as Basic auth in place of the key. Never quotes the URL, which may
    hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is what checks it
    except ValueError:
        return "it cannot be read as a URL"
    if parts.scheme not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if "@" in parts.netloc:
        return ("it holds a user name or password (user:pass@host), which would be sent as Basic auth in place of "
                "the API key: remove it, and give the key through the endpoint's key variable")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        return ("it has a query string or fragment (?... or #...), which would end up in the middle of every "
                "request's path: remove it (headers and parameters go in the request, not the base URL)")
    return None


def shown_url(url: str) -> str:
    """A base URL as reports may show it: without a user name, a password or a query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "an unreadable URL"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class Completion:
    """A model's answer: `str(completion)` is its text, so it can be passed to any helper."""

    text: str
    model: str
    usage: Usage
    latency_s: float
    served_model: str = ""
    refusal: str | None = None
    cached: bool = False
    """Answered from the on-disk cache (`--distill-cache`): `latency_s` is the original call's."""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        """Short, for pytest's assertion messages: the text's beginning and the model."""
        return f"Completion({shorten(self.text, 40)!r}, model={self.model!r})"


def shorten(text: str, width: int) -> str:
    """`text` on one line with its control characters escaped, cut to at most `width` characters with an
    ellipsis (any script: no word splitting)."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= width else flat[:width - 1] + "…"


class ModelError(DistillError):
    """A model call that failed for a reason outside the test (network, auth, limits, server).

    The plugin reports it as an error of the test, not a failure of the model under test. It names
    who was asked (`role`: model under test, teacher, judge, embeddings; set by the `Model` that
    made the call), the model, the server's `base_url` (never a key) and the server's own words.
    `status` is the HTTP status, `param` the request parameter the API blamed, when it named one.
    """

    def __init__(self, model: str, endpoint: str, message: str, status: int | None = None,
                 param: str | None = None, *, base_url: str = "", role: str = "") -> None:
        message = strict_json.as_unicode(message)  # it quotes the server, whose text may be no Unicode
        self.model, self.endpoint, self.status, self.param = model, endpoint, status, param
        self.message, self.base_url, self.role = message, base_url, role
        code = f" (HTTP {status})" if status else ""
        if model:
            where = f"{role or 'model'} {model!r}" + (f" at {base_url}" if base_url else "")
            super().__init__(f"{where}: {endpoint} failed{code}: {message}")
        else:
            super().__init__(f"{endpoint}{' on ' + base_url if base_url else ''} failed{code}: {message}")

    def in_role(self, role: str) -> ModelError:
        """The same error, saying who was asked (once: the first role given stays)."""
        if self.role or not role:
            return self
        return ModelError(self.model, self.endpoint, self.message, self.status, self.param,
                          base_url=self.base_url, role=role)
