"""`hf:` models: an open-weights causal LM run in this process, answering like an API model.

`hf:PATH_OR_ID` is a transformers model (a local folder or a hub id); `hf:BASE+ADAPTER_DIR` is that
base with a PEFT LoRA adapter; `hf:ADAPTER_DIR` is an adapter whose folder records its base. Each
model is loaded once per runtime and answers one request at a time under its own lock, in a worker
thread, so the runtime's event loop never waits on it. torch, transformers and peft come with the
`[trl]` extra and are imported only when an `hf:` model is first used: the core install stays light.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import install_hint
from .types import LOCAL_PREFIX, Completion, ModelError, Usage

INSTALL = install_hint("trl")
RUNTIME_PACKAGES = ("torch", "transformers", "peft")
ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_MAX_TOKENS = 256
ENDPOINT = "hf generate"
LOAD = "hf load"
GENERATION_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed")


def is_hf(name: str) -> bool:
    return name.startswith(LOCAL_PREFIX)


def missing_packages(packages: Sequence[str] = RUNTIME_PACKAGES) -> list[str]:
    """The packages of the `[trl]` extra that this environment lacks (none are imported here)."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


def unavailable(names: Iterable[str]) -> str | None:
    """Why the `hf:` models among `names` cannot run here (the extra is missing), or None."""
    local = sorted({name for name in names if is_hf(name)})
    missing = missing_packages() if local else []
    return f"the model {local[0]} needs {', '.join(missing)}, not installed: {INSTALL}" if missing else None


@dataclass(frozen=True)
class HFName:
    """An `hf:` model name taken apart: the base model and, if any, the adapter folder on it."""

    base: str
    adapter: Path | None = None

    @classmethod
    def parse(cls, name: str) -> HFName:
        """`hf:BASE`, `hf:BASE+ADAPTER_DIR`, or `hf:ADAPTER_DIR` when the adapter records its base."""
        base, plus, adapter = name.removeprefix(LOCAL_PREFIX).partition("+")
        if not base or (plus and not adapter):
            raise ModelError(name, LOAD, "expected hf:PATH_OR_ID or hf:BASE+ADAPTER_DIR")
        if plus:
            return cls(base, Path(adapter).expanduser())
        folder = Path(base).expanduser()
        if (folder / ADAPTER_CONFIG).is_file():
            recorded = adapter_base(folder)
            if not recorded:
                raise ModelError(name, LOAD, f"the adapter in {folder} records no base model: use hf:BASE+{base}")
            return cls(recorded, folder)
        return cls(base)


def adapter_base(folder: Path) -> str | None:
    """The base model a PEFT adapter folder was trained on, as its adapter_config.json records it."""
    try:
        base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return base if isinstance(base, str) else None


def resolve_base(base: str) -> str:
    """A local model folder as an absolute path (what an adapter records), a hub id as it is."""
    folder = Path(base).expanduser()
    return str(folder.resolve()) if folder.is_dir() else base


def load_base(name: str, base: str) -> tuple[Any, Any]:
    """The tokenizer and causal LM of `base`, or a `ModelError` that says what `base` is instead."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    folder = Path(base).expanduser()
    if not folder.is_dir() and (folder.exists() or base.startswith((".", "/", "~")) or base.count("/") > 1):
        raise ModelError(name, LOAD, f"{base}: no such model folder")
    source = resolve_base(base)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(name, LOAD, f"{base} is neither a model folder here nor a hub model that can be loaded "
                                     f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {_first_line(exc)}") from None
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ModelError(name, LOAD, f"{base} is not a causal language model (its config is {type(config).__name__}); "
                                     "hf: models and the trl backend need a decoder that generates text")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(name, LOAD, f"{base} cannot be loaded: {_first_line(exc)}") from None
    if not tokenizer.chat_template:
        raise ModelError(name, LOAD, f"the tokenizer of {base} has no chat template: use an instruct/chat model")
    return tokenizer, model


def attach_adapter(name: str, model: Any, base: str, adapter: Path) -> Any:
    """The base model with the LoRA adapter merged in (merged, so answering costs no more than the base)."""
    from peft import PeftModel

    if not (adapter / ADAPTER_CONFIG).is_file():
        what = "no such folder" if not adapter.is_dir() else f"no {ADAPTER_CONFIG} in it: not a PEFT adapter folder"
        raise ModelError(name, LOAD, f"adapter {adapter}: {what}")
    try:
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        recorded = adapter_base(adapter)
        trained = f" it was trained on {recorded}, not on {base}" if recorded and recorded != base else ""
        raise ModelError(name, LOAD, f"adapter {adapter} does not fit base {base}:{trained} ({_first_line(exc)})") from None


def context_length(model: Any) -> int | None:
    """How many tokens the model attends to, as its config says."""
    return getattr(model.config, "max_position_embeddings", None)


def chat_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """API messages as a chat template expects them: text content, and `developer` read as `system`."""
    result = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            content = "".join(part.get("text", "") for part in content or () if isinstance(part, dict))
        role = "system" if message.get("role") == "developer" else str(message.get("role"))
        result.append({"role": role, "content": content})
    return result


class LocalModel:
    """One loaded model; `chat` answers under a lock, since a model generates one request at a time."""

    def __init__(self, name: str) -> None:
        import torch

        parsed = HFName.parse(name)
        self.name = name
        self.tokenizer, model = load_base(name, parsed.base)
        if parsed.adapter is not None:
            model = attach_adapter(name, model, parsed.base, parsed.adapter)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(self.device).eval()
        pad = self.tokenizer.pad_token_id
        self._pad_id = self.tokenizer.eos_token_id if pad is None else pad
        self._lock = threading.Lock()

    def chat(self, messages: Sequence[dict[str, Any]], params: dict[str, Any]) -> Completion:
        import torch
        from jinja2 import TemplateError

        options = self._options(params)
        with self._lock:
            started = time.perf_counter()
            try:
                inputs = self.tokenizer.apply_chat_template(
                    chat_messages(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True)
            except (TemplateError, ValueError, TypeError) as exc:  # e.g. a role the template does not know
                raise ModelError(self.name, ENDPOINT, f"the chat template refused the messages: {_first_line(exc)}") from None
            prompt_tokens = int(inputs["input_ids"].shape[1])
            options["max_new_tokens"] = self._room(prompt_tokens, options["max_new_tokens"])
            if "seed" in params:
                torch.manual_seed(int(params["seed"]))
            try:
                with torch.inference_mode():
                    inputs = inputs.to(self.device)  # only what a causal LM takes (some tokenizers add token_type_ids)
                    output = self.model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                                 **options, pad_token_id=self._pad_id)
            except torch.OutOfMemoryError:
                raise ModelError(self.name, ENDPOINT, f"out of memory on {self.device} for a {prompt_tokens}-token prompt") from None
            latency = time.perf_counter() - started
        new = output[0, prompt_tokens:]
        return Completion(text=self.tokenizer.decode(new, skip_special_tokens=True), model=self.name,
                          usage=Usage(prompt_tokens, int(new.shape[0])), latency_s=latency, served_model=self.name)

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        """Chat Completions parameters as `generate` options: greedy unless a temperature above 0 is given."""
        unknown = sorted(set(params) - set(GENERATION_PARAMS))
        if unknown:
            raise ModelError(self.name, ENDPOINT, f"hf: models do not take {', '.join(unknown)} "
                                                  f"(they take {', '.join(GENERATION_PARAMS)})")
        limit = params.get("max_completion_tokens", params.get("max_tokens")) or DEFAULT_MAX_TOKENS
        temperature = float(params.get("temperature") or 0.0)
        if temperature <= 0.0:
            return {"max_new_tokens": int(limit), "do_sample": False}
        return {"max_new_tokens": int(limit), "do_sample": True, "temperature": temperature,
                "top_p": float(params.get("top_p", 1.0))}

    def _room(self, prompt_tokens: int, wanted: int) -> int:
        context = context_length(self.model)
        if context is None:
            return wanted
        if prompt_tokens >= context:
            raise ModelError(self.name, ENDPOINT, f"the prompt is {prompt_tokens} tokens, the model's context {context}")
        return min(wanted, context - prompt_tokens)


class LocalModels:
    """The `hf:` models of one runtime, each loaded on first use and then kept; a load that failed
    fails again at once instead of loading the same weights for every test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LocalModel | ModelError] = {}

    def chat(self, name: str, messages: Sequence[dict[str, Any]], params: dict[str, Any]) -> Completion:
        return self.get(name).chat(messages, params)

    def get(self, name: str) -> LocalModel:
        with self._lock:
            if name not in self._models:
                missing = missing_packages()
                if missing:
                    raise ModelError(name, LOAD, f"{', '.join(missing)} not installed: {INSTALL}")
                try:
                    self._models[name] = LocalModel(name)
                except ModelError as exc:
                    self._models[name] = exc
            loaded = self._models[name]
        if isinstance(loaded, ModelError):
            raise loaded
        return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
