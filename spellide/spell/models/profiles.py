"""Named model profiles: which provider, endpoint, model, transport and prices a run uses.

Profiles live in TOML (``config/models.toml`` ships with the repository) as
``[profiles.NAME]`` tables. Users extend or override them with their own file(s) named by
the ``SPELLIDE_MODELS`` environment variable (several paths separated by ``os.pathsep``):
a table there with a new name adds a profile, one with an existing name overrides just the
fields it sets. ``extends = "other"`` copies another profile's fields first, so a variant
is one or two lines.

API keys are never stored here: a profile names the *environment variable* that holds the
key (``api_key_env``) and the provider reads it at call time.

The turn machine gets a model with ``get_model("profile:NAME")`` (or just ``"NAME"``); the CLI's
``--model profile:NAME`` goes through ``machine.resolve_model`` to the same function.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .base import MESSAGE, PREFILL, TOOL_CALL

#: The profiles file shipped with the repository.
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "config" / "models.toml"
ENV_VAR = "SPELLIDE_MODELS"

PROVIDERS = ("openai", "anthropic", "ollama")
TRANSPORTS = {
    "openai": (PREFILL, MESSAGE, TOOL_CALL),     # prefill = the /v1/completions endpoint
    "anthropic": (PREFILL, MESSAGE, TOOL_CALL),
    "ollama": (PREFILL, MESSAGE),                # prefill = /api/generate raw=true
}
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
}


@dataclass(frozen=True)
class Profile:
    """One model configuration. Prices are USD per million tokens."""

    name: str
    provider: str
    model: str
    transport: str
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None        # name of the environment variable holding the key
    max_tokens: int = 8192
    temperature: Optional[float] = None      # None = the server's default
    reasoning: dict[str, Any] = field(default_factory=dict)
    # openai: {effort = "low"|"medium"|"high"}; anthropic: {budget_tokens = N};
    # ollama: {think = true}
    price_input: float = 0.0
    price_cached_input: float = 0.0
    price_output: float = 0.0
    timeout: float = 120.0                   # seconds without data before a call times out
    connect_timeout: float = 10.0
    total_timeout: Optional[float] = None    # optional cap on a whole (streamed) call
    max_retries: int = 4                     # retries after 429/5xx/connection errors
    backoff_base: float = 1.0                # first backoff window, doubled each retry
    backoff_max: float = 30.0
    retry_after_max: float = 60.0            # longest Retry-After we are willing to honour
    prompt_cache: bool = False               # anthropic: mark cache breakpoints
    system_in_prompt: bool = False           # raw prefill: put the system prompt before the prefix
    max_tokens_field: str = "max_tokens"     # openai chat: or "max_completion_tokens"
    extra_body: dict[str, Any] = field(default_factory=dict)  # passed through to the request
    description: str = ""
    source: str = ""                         # file the profile came from (for messages)

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
        """USD for one call. ``input_tokens`` are the uncached ones; cached input is priced
        separately, which is why the split is kept all the way from the provider's usage."""
        return (input_tokens * self.price_input + cached_input_tokens * self.price_cached_input
                + output_tokens * self.price_output) / 1_000_000

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS[self.provider]).rstrip("/")

    def settings(self) -> dict[str, Any]:
        """Everything in the profile that changes the answer (no key, no prices, no timeouts)."""
        return {"provider": self.provider, "base_url": self.url, "model": self.model,
                "transport": self.transport, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "reasoning": dict(self.reasoning),
                "system_in_prompt": self.system_in_prompt, "extra_body": dict(self.extra_body)}


_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}
_META = {"extends"}


class ProfileError(ValueError):
    """A profiles file that cannot be used; the message names the file and profile."""


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProfileError(f"model profiles file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"model profiles file {path}: {e}") from None
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"model profiles file {path}: [profiles] must be a table")
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: profiles.{name} must be a table")
        unknown = set(table) - set(_FIELDS) - _META - {"name", "source"}
        if unknown:
            raise ProfileError(f"{path}: profiles.{name}: unknown field(s) {', '.join(sorted(unknown))} "
                               f"(known: {', '.join(sorted(set(_FIELDS) - {'name', 'source'}))})")
        out[name] = dict(table, source=str(path))
    return out


def _build(name: str, raw: dict[str, dict[str, Any]], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    table = raw[name]
    if name in seen:
        raise ProfileError(f"{table.get('source')}: profiles.{name}: 'extends' loop: "
                           f"{' -> '.join(seen + (name,))}")
    base: dict[str, Any] = {}
    parent = table.get("extends")
    if parent is not None:
        if parent not in raw:
            raise ProfileError(f"{table.get('source')}: profiles.{name} extends unknown profile {parent!r}")
        base = _build(parent, raw, seen + (name,))
    merged = {**base, **{k: v for k, v in table.items() if k != "extends"}}
    return merged


def _validate(name: str, fields: dict[str, Any]) -> Profile:
    src = fields.get("source", "")
    where = f"{src}: profiles.{name}" if src else f"profile {name}"
    for key in ("provider", "model", "transport"):
        if not fields.get(key):
            raise ProfileError(f"{where}: missing {key!r}")
    provider = fields["provider"]
    if provider not in PROVIDERS:
        raise ProfileError(f"{where}: provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    transport = fields["transport"]
    if transport not in TRANSPORTS[provider]:
        raise ProfileError(f"{where}: provider {provider} supports transports "
                           f"{', '.join(TRANSPORTS[provider])}, not {transport!r}")
    if provider == "anthropic" and transport == PREFILL and fields.get("reasoning"):
        raise ProfileError(f"{where}: Anthropic extended thinking cannot be combined with an "
                           f"assistant prefill; use transport = \"tool-call\" or drop 'reasoning'")
    if fields.get("max_tokens_field", "max_tokens") not in ("max_tokens", "max_completion_tokens"):
        raise ProfileError(f"{where}: max_tokens_field must be max_tokens or max_completion_tokens")
    values = {k: v for k, v in fields.items() if k in _FIELDS}
    values["name"] = name
    try:
        prof = Profile(**values)
    except TypeError as e:
        raise ProfileError(f"{where}: {e}") from None
    for num in ("max_tokens", "max_retries"):
        if not isinstance(getattr(prof, num), int) or getattr(prof, num) < 0:
            raise ProfileError(f"{where}: {num} must be a non-negative integer")
    for num in ("timeout", "connect_timeout", "price_input", "price_cached_input", "price_output",
                "backoff_base", "backoff_max", "retry_after_max"):
        if not isinstance(getattr(prof, num), (int, float)) or getattr(prof, num) < 0:
            raise ProfileError(f"{where}: {num} must be a non-negative number")
    if not isinstance(prof.reasoning, dict) or not isinstance(prof.extra_body, dict):
        raise ProfileError(f"{where}: reasoning and extra_body must be tables")
    return prof


def profile_paths(path: Optional[str | Path] = None) -> list[Path]:
    """The files that make up the profile set, in merge order."""
    paths = [Path(path) if path is not None else DEFAULT_PATH]
    extra = os.environ.get(ENV_VAR, "")
    paths += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
    return paths


def load_profiles(path: Optional[str | Path] = None) -> dict[str, Profile]:
    """Load the shipped profiles (or ``path`` instead) and merge the ``SPELLIDE_MODELS`` files.

    Later files override earlier ones field by field; ``extends`` is resolved after merging,
    so an override of a base profile is seen by everything that extends it.
    """
    raw: dict[str, dict[str, Any]] = {}
    for p in profile_paths(path):
        for name, table in _read_toml(p).items():
            raw[name] = {**raw.get(name, {}), **table}
    return {name: _validate(name, _build(name, raw)) for name in raw}


def parse_spec(spec: str, profiles: Optional[dict[str, Profile]] = None) -> Profile:
    """``NAME`` / ``profile:NAME`` -> that profile; ``PROVIDER:MODEL[@TRANSPORT]`` (e.g.
    ``ollama:qwen2.5-coder:7b@prefill``) -> an ad-hoc profile with default endpoint and no
    prices, for quick experiments against local servers."""
    spec = spec.strip()
    name = spec[len("profile:"):] if spec.startswith("profile:") else spec
    profs = profiles if profiles is not None else load_profiles()
    if name in profs:
        return profs[name]
    provider, sep, rest = spec.partition(":")
    if sep and provider in PROVIDERS and not spec.startswith("profile:") and rest:
        model, at, transport = rest.rpartition("@")
        if not at:
            model, transport = rest, (PREFILL if provider in ("anthropic", "ollama") else MESSAGE)
        api_env = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}.get(provider)
        return _validate(spec, {"provider": provider, "model": model, "transport": transport,
                                "api_key_env": api_env})
    known = ", ".join(sorted(profs)) or "(none)"
    raise ProfileError(f"unknown model profile {name!r}; known profiles: {known} "
                       f"(or use PROVIDER:MODEL[@TRANSPORT])")


def make_model(profile: Profile, *, sleep: Optional[Callable[[float], None]] = None) -> Any:
    """Instantiate the provider class for ``profile``."""
    if profile.provider == "openai":
        from .openai_compat import OpenAICompatModel
        return OpenAICompatModel(profile, sleep=sleep)
    if profile.provider == "anthropic":
        from .anthropic_provider import AnthropicModel
        return AnthropicModel(profile, sleep=sleep)
    if profile.provider == "ollama":
        from .ollama_provider import OllamaModel
        return OllamaModel(profile, sleep=sleep)
    raise ProfileError(f"unknown provider {profile.provider!r}")


def get_model(spec: str, *, profiles: Optional[dict[str, Profile]] = None,
              sleep: Optional[Callable[[float], None]] = None, **overrides: Any):
    """The model for a profile name (``NAME`` or ``profile:NAME``) or ad-hoc spec.

    ``overrides`` replace profile fields (tests point ``base_url`` at a local server; the IDE
    may lower ``max_tokens``); ``sleep`` replaces the backoff sleep (tests record it).
    """
    prof = parse_spec(spec, profiles)
    if overrides:
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise ProfileError(f"unknown profile field(s) {', '.join(sorted(unknown))}")
        prof = _validate(prof.name, {**dataclasses.asdict(prof), **overrides})
    return make_model(prof, sleep=sleep)
