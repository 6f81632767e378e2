"""Every option of the plugin, declared once and resolved once (command line > ini > default).

The rest of the package reads a frozen `Settings`, never `config.getoption`, so that a setting has
one name, one type and one default, and pure code can be tested with a hand-made `Settings`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .jsonl import DEFAULT_MAX_LINE_BYTES, SETTING
from .models.types import APIS, ENDPOINT_NAME, KEY_ENV_NAME, RESERVED_ENDPOINT_NAMES, Endpoint, shape_of, url_problem

DEFAULT_PRICES = """\
gpt-4o 2.50 10.00
gpt-4o-mini 0.15 0.60
gpt-4.1 2.00 8.00
gpt-4.1-mini 0.40 1.60
gpt-4.1-nano 0.10 0.40
o4-mini 1.10 4.40
ft:gpt-4o 3.75 15.00
ft:gpt-4o-mini 0.30 1.20
ft:gpt-4.1 3.00 12.00
ft:gpt-4.1-mini 0.80 3.20
ft:gpt-4.1-nano 0.20 0.80
"""
"""List prices in US dollars per 1M tokens; OpenAI bills a fine-tuned model (`ft:BASE`) above its base."""


GROUPS: dict[str, str] = {
    "models": "distill: models (under test, teacher, student, judge) and their calls",
    "datasets": "distill: datasets",
    "grading": "distill: grading",
    "reports": "distill: reports and baselines",
    "distillation": "distill: distillation (the gate and the training data)",
    "training": "distill: training backends",
    "simulator": "distill: the offline simulator",
}
"""The option groups of `pytest --help`, in this order; an option names its group by key."""


@dataclass(frozen=True)
class Option:
    """One row of SPEC.md's option table: its flag, its ini name, how to read it and its default.

    `spellings` are more names of the same flag. A flag in `YIELDING` belongs to the project when the
    project already defines it; the option is then reached by its spellings alone."""

    dest: str
    flag: str | None
    ini: str | None
    default: Any
    help: str
    convert: Callable[[Any], Any] = str
    each: bool = True
    """For a list (linelist, paths): convert each value; False gives `convert` the whole list."""
    action: str = "store"
    group: str = "models"
    metavar: str | None = None
    spellings: tuple[str, ...] = ()

    @property
    def ini_type(self) -> str:
        """The type pytest reads the ini setting as (shown in --help): lists, flags and numbers typed."""
        if self.dest == "sim_seed":
            return "paths"
        if isinstance(self.default, tuple) or "\n" in str(self.default):
            return "linelist"
        if self.action == "store_true":
            return "bool"
        types: dict[Callable[[Any], Any], str] = {_positive: "int", _count: "int", _rate: "float", _seconds: "float", _above_zero: "float"}
        return types.get(self.convert, "string")

    def help_text(self) -> str:
        """The help with its default, unless the help already names it."""
        if "default" in self.help:
            return self.help
        if self.default is None or self.default == ():
            shown = "none"
        elif isinstance(self.default, bool):
            shown = "on" if self.default else "off"
        elif isinstance(self.default, float):
            shown = f"{self.default:g}"
        else:
            shown = str(self.default)
        return f"{self.help} (default: {shown})"

    @property
    def shown_metavar(self) -> str:
        return self.metavar or {_positive: "N", _count: "N", _rate: "RATE", _seconds: "SECONDS", Path: "PATH"}.get(
            self.convert, "TEXT")


def _number(text: str, meaning: str, accept: Callable[[float], bool]) -> float:
    """A finite number that `accept` takes, or a ValueError saying what the option takes (never Python's
    own "could not convert string to float", and never NaN or an infinity, which pass or fail every
    comparison and end runs in tracebacks)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not accept(value):
        raise ValueError(f"{text} is not {meaning}")
    return value


def _rate(text: str) -> float:
    return _number(text, "a rate between 0 and 1 (a fraction, e.g. 0.05 for 5%)", lambda value: 0.0 <= value <= 1.0)


def _positive(text: str) -> int:
    value = _number(text, "a whole number of at least 1", lambda value: value >= 1 and value.is_integer())
    return int(value)


def _seconds(text: str) -> float:
    return _number(text, "a number of seconds above 0 (e.g. 30)", lambda value: value > 0)


def _above_zero(text: str) -> float:
    return _number(text, "a number above 0 (e.g. 2 or 0.0002)", lambda value: value > 0)


def _endpoints(lines: list[str]) -> tuple[Endpoint, ...]:
    """`distill_endpoints`: one `NAME BASE_URL [API_KEY_ENV] [api=chat|responses]` a line; a bad line stops
    the run at start-up."""
    endpoints: dict[str, Endpoint] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"line {number}"  # never the line itself: a key pasted in place of its variable's name stays unsaid
        api = fields.pop()[len("api="):] if len(fields) > 2 and fields[-1].startswith("api=") else "chat"
        if api not in APIS:
            raise ValueError(f"{where}: api= is one of {', '.join(APIS)}")
        if len(fields) not in (2, 3):
            raise ValueError(f"{where}: expected NAME BASE_URL [API_KEY_ENV] [api=chat|responses]")
        name, url, key_env = fields[0], fields[1], fields[2] if len(fields) == 3 else None
        if not ENDPOINT_NAME.fullmatch(name) or name in RESERVED_ENDPOINT_NAMES:
            raise ValueError(f"{where}: {name!r} cannot name an endpoint (a letter, then letters, digits, . _ -; "
                             f"not {' or '.join(RESERVED_ENDPOINT_NAMES)}, which keep their meaning in model names)")
        if name in endpoints:
            raise ValueError(f"{where}: the endpoint {name!r} is declared twice")
        if url_problem(url):
            raise ValueError(f"{where}: the base URL is not usable: {url_problem(url)}")
        if key_env is not None and not KEY_ENV_NAME.fullmatch(key_env):
            raise ValueError(f"{where}: API_KEY_ENV is the name of an environment variable, not a key; the third field, "
                             f"{shape_of(key_env)}, is not shaped like one (e.g. GROQ_API_KEY), so it may be a key and "
                             "is not shown: put the key in a variable and name the variable here")
        endpoints[name] = Endpoint(name, url, key_env, api=api)
    return tuple(endpoints.values())


def _shard(text: str) -> tuple[int, int]:
    """`I/N`: the I-th of N slices, I from 1 to N."""
    index, sep, count = text.strip().partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise ValueError(f"{text!r} is not I/N (e.g. 2/3: the second of three slices)")
    if not 1 <= int(index) <= int(count):
        raise ValueError(f"{text!r}: I must be from 1 to N (the slices of {int(count)} are 1/{int(count)} to "
                         f"{int(count)}/{int(count)})")
    return int(index), int(count)


def _cache_mode(text: str) -> str:
    mode = {"": "on", "1": "on", "true": "on", "on": "on", "refresh": "refresh",
            "0": "off", "false": "off", "off": "off"}.get(text.strip().lower())
    if mode is None:
        raise ValueError(f"{text!r} is not one of on, off, refresh")
    return mode


GATE_METRICS = {"pass-rate": "pass-rate", "pass_rate": "pass-rate", "pass^k": "pass^k", "pass^n": "pass^k"}


def _gate_metric(text: str) -> str:
    metric = GATE_METRICS.get(text.strip().lower())
    if metric is None:
        raise ValueError(f"{text!r} is not one of pass-rate, pass^k")
    return metric


@dataclass(frozen=True)
class RateRule:
    """One `--distill-pass-rate` rule: every model's pass rate (grader None), or one grader's, at least `rate`."""

    grader: str | None
    rate: float

    def __str__(self) -> str:
        return f"{self.grader}={self.rate:g}" if self.grader else f"{self.rate:g}"


def _rate_rule(text: str) -> RateRule:
    """`0.9` (every model's pass rate) or `GRADER=0.9` (that grader's pass rate, on every model)."""
    grader, sep, rate = text.strip().rpartition("=")
    if sep and not grader.strip():
        raise ValueError(f"{text!r} names no grader before '=' (GRADER=RATE)")
    return RateRule(grader.strip() or None, _rate(rate.strip()))


def _choice(*choices: str) -> Callable[[str], str]:
    def choose(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value
    return choose


def _filter_mode(text: str) -> str:
    """--distill-filter: bare (or an ini `true`) replays the deterministic checks; `judged` the judges too."""
    mode = {"": "checks", "1": "checks", "true": "checks", "on": "checks", "yes": "checks", "checks": "checks",
            "judged": "judged", "0": "off", "false": "off", "off": "off", "no": "off"}.get(text.strip().lower())
    if mode is None:
        raise ValueError(f"{text!r} is not one of checks, judged, off")
    return mode


def _count(text: str) -> int:
    value = _number(text, "a whole number of at least 0", lambda value: value >= 0 and value.is_integer())
    return int(value)


def _flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _models(text: str) -> tuple[str, ...]:
    """`--model a,b` is two models: a model name holds no comma."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"{text!r} names an empty model (separate several with commas, or repeat the option)")
    return names


def _model(text: str) -> str:
    name = text.strip()
    if not name or "," in name:
        raise ValueError(f"{text!r} is not one model name")
    return name


OPTIONS: tuple[Option, ...] = (
    Option("models", "--model", "distill_model", (), "model(s) under test; repeat, or separate with commas, for several "
           "(default: the student)", _models, action="append", metavar="NAME", spellings=("--distill-model",)),
    Option("teacher", "--teacher", "distill_teacher", "gpt-4o", "the teacher model", _model, metavar="NAME"),
    Option("student", "--student", "distill_student", "gpt-4o-mini", "the student base model that fine-tuning starts from", _model,
           metavar="NAME"),
    Option("grader_model", "--grader-model", "distill_grader_model", None, "the judge for model-graded checks (default: the teacher)",
           _model, metavar="NAME", spellings=("--judge-model",)),
    Option("concurrency", "--distill-concurrency", "distill_concurrency", 8, "model calls in flight at once in this process, per endpoint",
           _positive),
    Option("request_timeout", "--distill-request-timeout", "distill_request_timeout", 120.0, "bound in seconds on one model request",
           _seconds),
    Option("endpoints", None, "distill_endpoints", (), "lines NAME BASE_URL [API_KEY_ENV] [api=chat|responses]: servers that "
           "NAME:MODEL names", _endpoints, each=False),
    Option("api", None, "distill_api", "chat", "how the default endpoint's models are asked: chat (POST /v1/chat/completions) "
           "or responses (POST /v1/responses)", _choice(*APIS)),
    Option("cache", "--distill-cache", "distill_cache", "off",
           "reuse identical model calls from an on-disk cache; refresh calls again and rewrites it",
           _cache_mode, action="optional", metavar="on|off|refresh"),
    Option("batch", "--distill-batch", "distill_batch", False, "send the model and judge calls through the Batch API "
           "(half the price, answered within 24 h; a re-run resumes the batches under way)", _flag, action="store_true"),
    Option("batch_poll", "--distill-batch-poll", "distill_batch_poll", None, "seconds between two looks at a batch under way "
           "(default: 10, 0.05 against the simulator)", _seconds),
    Option("prices", None, "distill_prices", DEFAULT_PRICES, "lines MODEL INPUT_PER_1M OUTPUT_PER_1M for the cost column "
           "(default: common OpenAI models)"),
    Option("dataset", "--distill-dataset", "distill_dataset", None, "the cases for tests that ask for `case` and carry no marker: "
           "'stored' or 'stored:KEY=VALUE,...' (stored chat completions; model=, limit=, order= filter the listing, any "
           "other key the metadata, e.g. stored:split=test,limit=200), or a .jsonl path (chat or openai/evals format)",
           group="datasets", metavar="SPEC"),
    Option("shard", "--distill-shard", "distill_shard", None, "run the I-th of N slices of every dataset (a case's slice "
           "follows from a hash of its id: the same on every machine and for every model)", _shard, group="datasets",
           metavar="I/N"),
    Option("max_line_bytes", None, SETTING, DEFAULT_MAX_LINE_BYTES, "the longest dataset line read, in bytes; a longer "
           "line is an error of its own case (the default, 5 MB, is about a million tokens); also the longest line of a "
           "recorded: model's file and of --distill-judge-labels, and the longest record of a baseline (--distill-baseline "
           "is read a record at a time)", _positive, group="datasets",
           metavar="BYTES"),
    Option("embedding_model", None, "distill_embedding_model", "text-embedding-3-small", "model for embedding_similarity", group="grading"),
    Option("repeat", "--distill-repeat", "distill_repeat", 1, "run each case N times per model", _positive, group="grading"),
    Option("gate_metric", "--distill-gate-metric", "distill_gate_metric", "pass-rate",
           "what the gate and the baseline compare: pass-rate, or pass^k (passed in every repeat)", _gate_metric, group="grading",
           metavar="NAME"),
    Option("judge_labels", "--distill-judge-labels", "distill_judge_labels", None,
           "human verdicts (JSONL of case_id, grader, passed) to measure each judge against", Path, group="grading", metavar="FILE"),
    Option("results", "--distill-results", "distill_results", None, "write the JSON results file here", Path, group="reports"),
    Option("baseline", "--distill-baseline", "distill_baseline", None, "compare with an earlier results file", Path, group="reports"),
    Option("tolerance", "--distill-tolerance", "distill_tolerance", 0.0, "allowed pass-rate drop below the baseline", _rate,
           group="reports"),
    Option("record", "--distill-record", "distill_record", None, "append each answer of a model under test to this "
           "chat-format JSONL file (one line per case and model; a recorded:FILE model answers from it)", Path, group="reports",
           metavar="FILE.jsonl"),
    Option("baseline_test", "--distill-baseline-test", "distill_baseline_test", "tolerance",
           "what makes a drop below the baseline a regression: tolerance (any drop past --distill-tolerance) or mcnemar "
           "(McNemar's exact test on the cases that flipped, significant at --distill-alpha)", _choice("tolerance", "mcnemar"),
           group="reports", metavar="tolerance|mcnemar"),
    Option("alpha", "--distill-alpha", "distill_alpha", 0.05, "significance level of --distill-baseline-test and "
           "--distill-gate-test mcnemar", _rate, group="reports", metavar="ALPHA"),
    Option("pass_rate", "--distill-pass-rate", "distill_pass_rate", (), "the session passes when every model's pass rate is at "
           "least RATE (single cases may fail); GRADER=RATE for one grader's; repeatable", _rate_rule, action="append",
           group="reports", metavar="[GRADER=]RATE"),
    Option("pass_rate_ci", "--distill-pass-rate-ci", "distill_pass_rate_ci", False, "--distill-pass-rate is met only when the "
           "lower bound of the rate's 95% interval is at least RATE", _flag, action="store_true", group="reports"),
    Option("markdown", "--distill-markdown", "distill_markdown", None, "write the summary, the verdicts and the worst failures "
           "as GitHub-flavoured Markdown (for $GITHUB_STEP_SUMMARY or a PR comment)", Path, group="reports", metavar="FILE"),
    Option("keep_transcripts", "--distill-keep-transcripts", "distill_keep_transcripts", False, "the results file keeps each "
           "judge call's messages and raw reply, so a disputed verdict can be read later (large)", _flag, action="store_true",
           group="reports"),
    Option("balance", "--distill-balance", "distill_balance", None, "show how KEY (a metadata key, or 'length' for the "
           "input's length bucket) spreads over the training and test data, its rare and unseen values, and every model's "
           "pass rate per value", group="reports", metavar="KEY"),
    Option("balance_against", "--distill-balance-against", "distill_balance_against", None, "--distill-balance compares "
           "the training data with this dataset instead of the test split (e.g. recent production traffic)", group="reports",
           metavar="SPEC"),
    Option("baseline_models", "--distill-baseline-model", None, (), "compare baseline model OLD with this run's NEW; repeatable",
           action="append", group="reports", metavar="OLD=NEW"),
    Option("distill", "--distill", None, False, "after the run, apply the gate and, if met, start a fine-tuning job", action="store_true",
           group="distillation"),
    Option("dry_run", "--distill-dry-run", None, False, "apply the gate and write the training JSONL, but upload nothing",
           action="store_true", group="distillation"),
    Option("wait", "--distill-wait", None, False, "follow a started job to its end and print the fine-tuned model", action="store_true",
           group="distillation"),
    Option("timeout", "--distill-timeout", "distill_timeout", 7200.0, "bound in seconds on --distill-wait", _seconds,
           group="distillation"),
    Option("teacher_min", "--distill-teacher-min", "distill_teacher_min", 0.9, "gate: minimum teacher pass rate", _rate,
           group="distillation"),
    Option("gap_min", "--distill-gap-min", "distill_gap_min", 0.05, "gate: minimum teacher minus student pass rate", _rate,
           group="distillation"),
    Option("gate_test", "--distill-gate-test", "distill_gate_test", "gap", "gate: how the teacher must beat the student: gap "
           "(by --distill-gap-min) or mcnemar (significantly, on the cases both ran, at --distill-alpha)", _choice("gap", "mcnemar"),
           group="distillation", metavar="gap|mcnemar"),
    Option("min_examples", "--distill-min-examples", "distill_min_examples", 10, "gate: minimum valid training examples", _positive,
           group="distillation"),
    Option("train", "--distill-train", "distill_train", "stored:split=train", "where the training examples come from",
           group="distillation", metavar="SPEC"),
    Option("filter", "--distill-filter", "distill_filter", "off",
           "train only on teacher answers that pass the suite's deterministic checks (bare flag, or 'checks'), or these "
           "and its model-graded checks too ('judged': the same helpers, prompts, thresholds and judge)", _filter_mode,
           action="optional", group="distillation", metavar="checks|judged"),
    Option("repair", "--distill-repair", "distill_repair", 0, "with --distill-filter: re-ask the teacher up to N times with "
           "its failing answer and the check's reason before leaving an example out (default: 0, never)", _count,
           group="distillation"),
    Option("suffix", "--distill-suffix", "distill_suffix", None, "suffix of the fine-tuned model's name", group="distillation"),
    Option("student_system", "--distill-student-system", "distill_student_system", None,
           "train and run the student with this system prompt", group="distillation"),
    Option("backend", "--distill-backend", "distill_backend", "openai", "who trains the student: openai or trl", group="training",
           metavar="NAME"),
    Option("validation", "--distill-validation", "distill_validation", None, "validation examples (a dataset spec)", group="training",
           metavar="SPEC"),
    Option("epochs", "--distill-epochs", "distill_epochs", None, "training epochs (default: the backend's)", _positive, group="training"),
    Option("lr", "--distill-lr", "distill_lr", None, "learning-rate multiplier (openai) or learning rate (trl) (default: the backend's)",
           _above_zero, group="training", metavar="RATE"),
    Option("batch_size", "--distill-batch-size", "distill_batch_size", None, "batch size (default: the backend's)", _positive,
           group="training"),
    Option("lora_rank", "--distill-lora-rank", "distill_lora_rank", 16, "LoRA rank (trl)", _positive, group="training"),
    Option("output", "--distill-output", "distill_output", Path("distilled"), "where the trl backend writes the adapter", Path,
           group="training", metavar="DIR"),
    Option("drop_long", "--distill-drop-long", "distill_drop_long", False, "trl: leave out training examples longer than the student's "
           "context", _flag, action="store_true", group="training"),
    Option("sim", "--distill-sim", None, False, "run against the bundled offline OpenAI-compatible simulator", action="store_true",
           group="simulator"),
    Option("sim_seed", "--distill-sim-seed", "distill_sim_seed", (), "a JSONL file that seeds the simulator's stored "
           "completions, chat-format or openai/evals registry lines, or a test file that `evals import` wrote (its dataset) "
           "(repeatable; the command line's replace the ini's)", Path, action="append", group="simulator", metavar="FILE"),
)
YIELDING = frozenset({"--model"})
"""Flags a project may already define (a `--model` of its own): the project keeps them."""
MODEL_FLAG = pytest.StashKey[str]()
"""The flag that names the models under test in this session: `--model`, or `--distill-model` when the project owns `--model`."""


_DEFAULT: dict[str, Any] = {opt.dest: opt.default for opt in OPTIONS}
"""Each option's default by its `dest`: where the fields of `Settings` take theirs."""


@dataclass(frozen=True)
class Settings:
    """The resolved options of one session: one field per option, named by its `dest`, typed here (for mypy)
    and defaulted from OPTIONS, so that a default is written once; and three fields `resolve` fills itself.
    tests/test_settings.py holds the two together (every option a field of the type its reading gives)."""

    models: tuple[str, ...] = _DEFAULT["models"]
    teacher: str = _DEFAULT["teacher"]
    student: str = _DEFAULT["student"]
    grader_model: str | None = _DEFAULT["grader_model"]
    dataset: str | None = _DEFAULT["dataset"]
    shard: tuple[int, int] | None = _DEFAULT["shard"]
    max_line_bytes: int = _DEFAULT["max_line_bytes"]
    train: str = _DEFAULT["train"]
    distill: bool = _DEFAULT["distill"]
    dry_run: bool = _DEFAULT["dry_run"]
    wait: bool = _DEFAULT["wait"]
    suffix: str | None = _DEFAULT["suffix"]
    teacher_min: float = _DEFAULT["teacher_min"]
    gap_min: float = _DEFAULT["gap_min"]
    min_examples: int = _DEFAULT["min_examples"]
    results: Path | None = _DEFAULT["results"]
    baseline: Path | None = _DEFAULT["baseline"]
    record: Path | None = _DEFAULT["record"]
    tolerance: float = _DEFAULT["tolerance"]
    baseline_test: str = _DEFAULT["baseline_test"]
    alpha: float = _DEFAULT["alpha"]
    pass_rate: tuple[RateRule, ...] = _DEFAULT["pass_rate"]
    pass_rate_ci: bool = _DEFAULT["pass_rate_ci"]
    markdown: Path | None = _DEFAULT["markdown"]
    keep_transcripts: bool = _DEFAULT["keep_transcripts"]
    balance: str | None = _DEFAULT["balance"]
    balance_against: str | None = _DEFAULT["balance_against"]
    gate_test: str = _DEFAULT["gate_test"]
    concurrency: int = _DEFAULT["concurrency"]
    request_timeout: float = _DEFAULT["request_timeout"]
    endpoints: tuple[Endpoint, ...] = _DEFAULT["endpoints"]
    api: str = _DEFAULT["api"]
    cache: str = _DEFAULT["cache"]
    batch: bool = _DEFAULT["batch"]
    batch_poll: float | None = _DEFAULT["batch_poll"]
    sim: bool = _DEFAULT["sim"]
    filter: str = _DEFAULT["filter"]
    """off, checks (the deterministic ones) or judged (the model-graded ones too)."""
    repair: int = _DEFAULT["repair"]
    timeout: float = _DEFAULT["timeout"]
    repeat: int = _DEFAULT["repeat"]
    gate_metric: str = _DEFAULT["gate_metric"]
    judge_labels: Path | None = _DEFAULT["judge_labels"]
    baseline_models: tuple[str, ...] = _DEFAULT["baseline_models"]
    backend: str = _DEFAULT["backend"]
    validation: str | None = _DEFAULT["validation"]
    epochs: int | None = _DEFAULT["epochs"]
    lr: float | None = _DEFAULT["lr"]
    batch_size: int | None = _DEFAULT["batch_size"]
    lora_rank: int = _DEFAULT["lora_rank"]
    output: Path = _DEFAULT["output"]
    drop_long: bool = _DEFAULT["drop_long"]
    student_system: str | None = _DEFAULT["student_system"]
    prices: str = _DEFAULT["prices"]
    embedding_model: str = _DEFAULT["embedding_model"]
    sim_seed: tuple[Path, ...] = _DEFAULT["sim_seed"]
    rootpath: Path = field(default_factory=Path.cwd)
    model_flag: str = "--model"
    """How the user names a model under test here: `--distill-model` when the project owns `--model`."""
    configured: bool = False
    """Whether any option or ini setting of the plugin was given: only then does its header show."""

    @property
    def every_repeat(self) -> bool:
        """--distill-gate-metric pass^k: a case passes the gate and the baseline only if it passed every repeat."""
        return self.gate_metric == "pass^k"

    @property
    def judge(self) -> str:
        return self.grader_model or self.teacher

    @property
    def models_under_test(self) -> tuple[str, ...]:
        """The models each case runs on; with --distill the teacher and student are always among them."""
        models = self.models or (self.student,)
        if self.distill or self.dry_run:
            models = tuple(dict.fromkeys((self.teacher, self.student, *models)))
        return models

    def baseline_map(self) -> dict[str, str]:
        """`--distill-baseline-model OLD=NEW` as {OLD: NEW}."""
        pairs = {}
        for text in self.baseline_models:
            old, sep, new = text.partition("=")
            if not sep or not old or not new:
                raise pytest.UsageError(f"--distill-baseline-model expects OLD=NEW, got {text!r}")
            pairs[old] = new
        return pairs


def item_params(item: pytest.Item) -> dict[str, Any]:
    """The parameters an item was collected with (`case`, `model`, `distill_sample`); none for a plain test."""
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    return params


SIM_URL = "distill_sim_url"
"""`workerinput` key: the controller's simulator, which the workers use."""
SIM_SEED = "distill_sim_seed_digest"
"""`workerinput` key: the digest of the simulator's seeds, part of every cache key under it."""
DIST = "distill_dist"
"""`workerinput` key: xdist's `--dist` mode, which tells a worker how much of its queue stays its own."""


def is_worker(config: pytest.Config) -> bool:
    """True in an xdist worker process: the controller alone does what must happen once."""
    return hasattr(config, "workerinput")


def add_options(parser: pytest.Parser) -> None:
    """Declare each group and ini setting, and the flags of all groups but `models`.

    The `models` flags come after the project's initial conftests (`add_model_flags`), so that a project
    with its own `--model` keeps it instead of meeting an argparse conflict."""
    groups = {key: parser.getgroup(f"distill-{key}", title) for key, title in GROUPS.items()}
    for opt in OPTIONS:
        if opt.ini:
            kind = opt.ini_type
            parser.addini(opt.ini, opt.help_text(), type=kind, default=[] if kind in ("linelist", "paths") else None)  # type: ignore[arg-type]
        if opt.flag and opt.group != "models":
            _add_flag(groups[opt.group], opt, (opt.flag, *opt.spellings))


def add_model_flags(parser: pytest.Parser, config: pytest.Config) -> None:
    """Declare the `models` flags, once; a flag in YIELDING that the project already has stays the project's."""
    if MODEL_FLAG in config.stash:
        return
    group = parser.getgroup("distill-models")
    config.stash[MODEL_FLAG] = "--model"
    for opt in OPTIONS:
        if opt.flag and opt.group == "models":
            try:
                _add_flag(group, opt, (opt.flag, *opt.spellings))
            except argparse.ArgumentError:
                if opt.flag not in YIELDING or not opt.spellings:
                    raise
                _add_flag(group, opt, opt.spellings)
                if opt.dest == "models":
                    config.stash[MODEL_FLAG] = opt.spellings[0]


def _add_flag(group: pytest.OptionGroup, opt: Option, names: tuple[str, ...]) -> None:
    dest = f"distill_{opt.dest}"
    shown = opt.help_text().replace("%", "%%")  # argparse formats help with %: a "95%" would break --help
    if opt.action == "store_true":
        group.addoption(*names, action="store_true", default=None, dest=dest, help=shown)
    elif opt.action == "optional":
        group.addoption(*names, nargs="?", const="on", default=None, dest=dest, help=shown, metavar=opt.shown_metavar)
    else:
        group.addoption(*names, action=opt.action, default=None, dest=dest, help=shown, metavar=opt.shown_metavar)


def resolve(config: pytest.Config) -> Settings:
    """Read every option once: the command line wins over the ini file, which wins over the default."""
    values: dict[str, Any] = {"rootpath": config.rootpath, "model_flag": config.stash.get(MODEL_FLAG, "--model")}
    for opt in OPTIONS:
        raw = config.getoption(f"distill_{opt.dest}", None) if opt.flag else None
        source = values["model_flag"] if opt.dest == "models" else opt.flag
        if raw is None and opt.ini:
            raw = config.getini(opt.ini)
            source = f"ini {opt.ini}"
        if raw is None or raw == []:
            continue
        values[opt.dest] = _convert(opt, raw, source)
        values["configured"] = True
    return Settings(**values)


def _convert(opt: Option, raw: Any, source: str | None) -> Any:
    """A value as its option takes it: lists become tuples (`a,b` items split), numbers and flags checked."""
    try:
        if isinstance(raw, list):
            if not opt.each:
                return opt.convert(raw)
            if not isinstance(opt.default, tuple):
                return opt.convert("\n".join(raw))
            items = [opt.convert(item) if isinstance(item, str) else item for item in raw]
            return tuple(part for item in items for part in (item if isinstance(item, tuple) else (item,)))
        if isinstance(raw, bool):
            return raw
        return opt.convert(raw)
    except ValueError as exc:
        hint = ""
        if opt.action == "optional" and source == opt.flag:  # `--distill-filter tests/`: argparse took the path
            hint = f" (a bare {opt.flag} takes the word after it as its value: put paths first, or write {opt.flag}=on)"
        raise pytest.UsageError(f"{source}: {exc}{hint}") from None
