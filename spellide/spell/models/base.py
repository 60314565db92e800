"""The model interface every provider implements.

A model turns a prefix (the open beginning of a Spell program) into a suffix. Transports
differ in how the prefix reaches the model (assistant prefill, a user message, a tool call);
the turn machine does not care, it only sees ``Completion.text`` (already cleaned of prefix
echoes and code fences by the provider for message/tool-call transports).

Every model call is an effect: the turn machine passes ``ModelRequest.cache_settings()`` into
the effect key, so anything that changes the answer must be in there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

PREFILL = "prefill"
MESSAGE = "message"
TOOL_CALL = "tool-call"
TEXT = "text"  # leaf-llm: plain text in, plain text out


@dataclass
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0  # USD, from the profile's prices

    def to_json(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "cached_input_tokens": self.cached_input_tokens,
                "output_tokens": self.output_tokens, "cost": self.cost}

    @classmethod
    def from_json(cls, d: Optional[dict]) -> "Usage":
        d = d or {}
        return cls(int(d.get("input_tokens", 0)), int(d.get("cached_input_tokens", 0)),
                   int(d.get("output_tokens", 0)), float(d.get("cost", 0.0)))


@dataclass
class ModelRequest:
    prefix: str                      # the program prefix (or, for TEXT, the prompt)
    kind: str = "spell"              # "spell" (a program suffix is wanted) or "text" (leaf-llm)
    system: Optional[str] = None     # system prompt; providers pick their transport's default if None
    on_delta: Optional[Callable[[str], None]] = None  # streaming callback, text chunks in order
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    transport: str = PREFILL
    raw: Any = None  # provider response summary for debugging (never contains keys)


class ModelError(Exception):
    """A model call that failed after the provider's own retries. ``retryable`` tells the
    IDE whether offering "retry" makes sense; the run pauses instead of losing work."""

    def __init__(self, message: str, *, retryable: bool = False, status: Optional[int] = None,
                 received: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.received = received


class Model(Protocol):
    name: str
    transport: str

    def complete(self, request: ModelRequest) -> Completion: ...

    def cache_settings(self) -> dict[str, Any]:
        """Settings that change the answer (model name, transport, temperature, max tokens,
        system prompt version...). Part of every model-call effect key."""
        ...
