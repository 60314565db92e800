"""Model profiles: the shipped file, merging SPELLIDE_MODELS files, validation, get_model, the
system prompts, and a whole run of the turn machine through a provider and a local server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spellide.spell.models.anthropic_provider import AnthropicModel
from spellide.spell.models.ollama_provider import OllamaModel
from spellide.spell.models.openai_compat import OpenAICompatModel
from spellide.spell.models.profiles import (DEFAULT_PATH, ProfileError, get_model, load_profiles,
                                            parse_spec)
from spellide.spell.prompts import PROMPT_VERSION, prompt_digest, system_prompt, transports

from .conftest import KEY_ENV
from .servers import Reply

SHIPPED = {"openai-gpt": ("openai", "message"), "openai-tc": ("openai", "tool-call"),
           "openai-completions": ("openai", "prefill"), "anthropic-pf": ("anthropic", "prefill"),
           "anthropic-tc": ("anthropic", "tool-call"), "ollama-prefill": ("ollama", "prefill"),
           "ollama-chat": ("ollama", "message"), "local-vllm": ("openai", "message")}


@pytest.fixture(autouse=True)
def _no_user_profiles(monkeypatch):
    monkeypatch.delenv("SPELLIDE_MODELS", raising=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_profiles_load_and_are_sensible():
    assert DEFAULT_PATH.name == "models.toml" and DEFAULT_PATH.parent.name == "config"
    profs = load_profiles()
    for name, (provider, transport) in SHIPPED.items():
        p = profs[name]
        assert (p.provider, p.transport) == (provider, transport), name
        assert p.max_tokens > 0 and p.timeout > 0 and p.max_retries >= 0
    assert profs["local-vllm"].url == "http://127.0.0.1:8000/v1"
    assert profs["ollama-prefill"].url == "http://127.0.0.1:11434"
    for p in profs.values():
        if p.url.startswith("https://"):  # hosted: a key variable and prices
            assert p.api_key_env and p.price_input > 0 and p.price_output > 0, p.name
            assert p.price_cached_input <= p.price_input


def test_extends_copies_fields():
    profs = load_profiles()
    assert profs["openai-tc"].model == profs["openai-gpt"].model
    assert profs["openai-tc"].price_input == profs["openai-gpt"].price_input


def test_user_file_overrides_and_adds(tmp_path, monkeypatch):
    extra = write(tmp_path, "mine.toml", """
[profiles.openai-gpt]
model = "gpt-custom"
temperature = 0.0

[profiles.my-local]
extends = "ollama-chat"
model = "llama3.2:3b"
base_url = "http://10.0.0.5:11434"
""")
    monkeypatch.setenv("SPELLIDE_MODELS", str(extra))
    profs = load_profiles()
    assert profs["openai-gpt"].model == "gpt-custom" and profs["openai-gpt"].temperature == 0.0
    assert profs["openai-gpt"].api_key_env == "OPENAI_API_KEY"       # untouched fields stay
    assert profs["openai-tc"].model == "gpt-custom"                 # extends sees the override
    mine = profs["my-local"]
    assert (mine.provider, mine.transport, mine.model) == ("ollama", "message", "llama3.2:3b")
    assert mine.url == "http://10.0.0.5:11434" and mine.source == str(extra)


def test_several_user_files_merge_in_order(tmp_path, monkeypatch):
    a = write(tmp_path, "a.toml", '[profiles.x]\nprovider = "ollama"\nmodel = "m1"\ntransport = "prefill"\n')
    b = write(tmp_path, "b.toml", '[profiles.x]\nmodel = "m2"\n')
    monkeypatch.setenv("SPELLIDE_MODELS", f"{a}:{b}")
    assert load_profiles()["x"].model == "m2"


def test_explicit_path_replaces_shipped_file(tmp_path):
    p = write(tmp_path, "only.toml", '[profiles.solo]\nprovider = "openai"\nmodel = "m"\ntransport = "message"\n')
    assert set(load_profiles(p)) == {"solo"}


@pytest.mark.parametrize("text, message", [
    ('[profiles.a]\nprovider = "openai"\nmodel = "m"\ntransport = "message"\ntemprature = 1\n',
     "unknown field(s) temprature"),
    ('[profiles.a]\nprovider = "azure"\nmodel = "m"\ntransport = "message"\n', "provider must be one of"),
    ('[profiles.a]\nprovider = "ollama"\nmodel = "m"\ntransport = "tool-call"\n', "supports transports"),
    ('[profiles.a]\nprovider = "openai"\ntransport = "message"\n', "missing 'model'"),
    ('[profiles.a]\nprovider = "anthropic"\nmodel = "m"\ntransport = "prefill"\nreasoning = {budget_tokens = 2000}\n',
     "cannot be combined with an assistant prefill"),
    ('[profiles.a]\nextends = "b"\n[profiles.b]\nextends = "a"\n', "'extends' loop"),
    ('[profiles.a]\nextends = "nope"\n', "extends unknown profile"),
    ('[profiles.a]\nprovider = "openai"\nmodel = "m"\ntransport = "message"\nmax_tokens = -5\n',
     "max_tokens must be"),
    ('[profiles.a\n', "models.toml"),
])
def test_validation_errors_name_file_and_profile(tmp_path, text, message):
    p = write(tmp_path, "models.toml", text)
    with pytest.raises(ProfileError, match=re.escape(message)) as ei:
        load_profiles(p)
    assert str(p) in str(ei.value)


def test_missing_user_file_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SPELLIDE_MODELS", str(tmp_path / "absent.toml"))
    with pytest.raises(ProfileError, match="not found"):
        load_profiles()


def test_get_model_by_name_and_profile_prefix():
    assert isinstance(get_model("profile:openai-gpt"), OpenAICompatModel)
    assert isinstance(get_model("anthropic-tc"), AnthropicModel)
    m = get_model("profile:ollama-prefill")
    assert isinstance(m, OllamaModel) and m.name == "ollama-prefill" and m.transport == "prefill"


def test_get_model_unknown_lists_known_names():
    with pytest.raises(ProfileError, match="unknown model profile 'nope'.*openai-gpt"):
        get_model("profile:nope")


def test_adhoc_spec():
    p = parse_spec("ollama:qwen2.5-coder:7b@message", profiles={})
    assert (p.provider, p.model, p.transport) == ("ollama", "qwen2.5-coder:7b", "message")
    p = parse_spec("anthropic:claude-x", profiles={})
    assert p.transport == "prefill" and p.api_key_env == "ANTHROPIC_API_KEY"


def test_overrides_are_validated():
    m = get_model("openai-gpt", base_url="http://127.0.0.1:9/v1", max_tokens=10)
    assert m.profile.url == "http://127.0.0.1:9/v1" and m.profile.max_tokens == 10
    with pytest.raises(ProfileError):
        get_model("openai-gpt", no_such_field=1)
    with pytest.raises(ProfileError):
        get_model("ollama-chat", transport="tool-call")


def test_cost_prices_per_million():
    p = load_profiles()["anthropic-pf"]
    assert p.cost(1_000_000, 0, 0) == pytest.approx(p.price_input)
    assert p.cost(0, 2_000_000, 1_000_000) == pytest.approx(2 * p.price_cached_input + p.price_output)


def test_cache_settings_shape():
    s = get_model("anthropic-tc").cache_settings()
    assert set(s) >= {"provider", "base_url", "model", "transport", "temperature", "max_tokens",
                      "reasoning", "prompt_version", "prompt_digest"}
    assert not any("price" in k or "key" in k or "timeout" in k for k in s)
    json.dumps(s)  # recordable
    assert s["prompt_digest"] == prompt_digest("tool-call")


def test_machine_resolves_profile_specs():
    from spellide.spell.machine import resolve_model
    model, _ = resolve_model("profile:ollama-chat")
    assert isinstance(model, OllamaModel)


# --- system prompts -----------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["prefill", "message", "tool-call"])
def test_system_prompts_teach_spell(transport):
    text = system_prompt(transport)
    assert "{{" not in text
    for needle in ["(quine completion (eval (do", "'TRAILING", "effect", "!extend", "!call-now",
                   "!peek", "!print", "!describe", "!compact", "wrap-cat", "leaf-llm", "(think",
                   "(rethink", "(prune", "(persist", ";; system:"]:
        assert needle in text, (transport, needle)
    assert ("spell_suffix" in text) == (transport == "tool-call")
    assert len(text) < 12_000  # it is sent with every call


def test_prompt_version_and_digests():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\d+", PROMPT_VERSION)
    assert len({prompt_digest(t) for t in transports()}) == 3
    with pytest.raises(ValueError):
        system_prompt("carrier-pigeon")


# --- the machine, end to end --------------------------------------------------------------------

def test_a_run_through_a_profile_and_a_local_server(server, fake_key, tmp_path, monkeypatch):
    """A real turn-machine run whose model is a user profile aimed at the local server:
    two steps (an extension, then the answer), deltas streamed as events, cost recorded."""
    from spellide.spell import events as ev
    from spellide.spell.api import RunConfig
    from spellide.spell.machine import Run

    user = write(tmp_path, "models.toml", f"""
[profiles.test-local]
provider = "openai"
base_url = "{server.openai_url}"
model = "fake-model"
transport = "tool-call"
api_key_env = "{KEY_ENV}"
price_input = 1.0
price_output = 2.0
""")
    monkeypatch.setenv("SPELLIDE_MODELS", str(user))
    server.push(Reply(tool="(def a 40) '(!extend)", chunk=3),
                Reply(tool="(+ a 2)", chunk=2))
    events = []
    run = Run(RunConfig(prompt="Compute 42", model="profile:test-local", recover=False),
              listeners=[events.append])
    result = run.execute()
    assert result.error is None and result.value == 42
    deltas = [e for e in events if e.type == ev.COMPLETION_DELTA]
    completions = [e for e in events if e.type == ev.COMPLETION]
    assert len(completions) == 2
    for comp in completions:
        streamed = "".join(d.data["text"] for d in deltas if d.data["step"] == comp.data["step"])
        assert streamed == comp.data["completion"]
    assert server.requests[1].body["messages"][1]["content"].endswith("(def a 40) (quote (!extend)) ")
    assert run.cost == pytest.approx(2 * (100 * 1.0 + 10 * 2.0) / 1e6)
    assert fake_key not in json.dumps(run.model_settings)


def test_the_budget_stops_a_run_before_a_call_whose_input_would_overspend(server, fake_key, tmp_path, monkeypatch):
    """Before each live model call the machine estimates what its input alone costs (prefix
    and system prompt at the profile's input price); a call that would take the run past its
    budget is not sent: the run stops with a clear message and nothing recorded is lost."""
    from spellide.spell.api import RunConfig
    from spellide.spell.edits import build_init
    from spellide.spell.machine import Run
    from spellide.spell.models.profiles import get_model

    user = write(tmp_path, "models.toml", f"""
[profiles.pricey]
provider = "openai"
base_url = "{server.openai_url}"
model = "fake-model"
transport = "message"
api_key_env = "{KEY_ENV}"
price_input = 10.0
""")
    monkeypatch.setenv("SPELLIDE_MODELS", str(user))
    first_prefix = build_init("Compute 42")[:-3] + " "   # the open prefix of the first call
    first = get_model("profile:pricey").estimate_input_cost(first_prefix)
    assert first > 0
    server.push(Reply(text="(def a 40) '(!extend)"), Reply(text="(+ a 2)"))
    run = Run(RunConfig(prompt="Compute 42", model="profile:pricey", recover=False, budget=first * 1.02))
    result = run.execute()
    assert result.error_kind == "budget-exceeded", result.error
    assert "the next model call's input alone would cost about $" in result.error
    assert len(server.requests) == 1                 # the second call was never sent
    assert run.cost == pytest.approx(100 * 10.0 / 1e6) and run.cost < first * 1.02
    assert [s["completion"] for s in result.steps][:1] == ["(def a 40) '(!extend)"]
    # a replay of the record reuses the recorded call: the estimate applies only to live calls
    replay = Run(RunConfig(prompt="Compute 42", model="profile:pricey", recover=False, budget=first / 2,
                           cache_mode="replay"), record=run.record())
    again = replay.execute()
    assert len(server.requests) == 1 and again.effects_reused >= 1
    assert again.error_kind == "budget-exceeded"     # ...and stops before the next live one
