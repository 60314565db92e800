"""The ``patterns/`` namespace: reusable Spell idioms written in Spell.

The reference ships a pattern library (``config/spl-lib/patterns.spl``) and its own prompts and
modules call into it as ``patterns/NAME``; its tests pin that ``patterns/check-result`` is a
Spell function of ``[prompt answer]`` documented under ``:docs``. The functions here are Spell
source (our own wording), so they are ordinary dynamically scoped Spell functions: the effects
they use (``leaf-llm``, ``!llm-self``) resolve where they are called, which is inside ``eval``,
like any effect.

Only the single-agent patterns are here; the reference's multi-agent ones (``ralph``,
``team``...) need ``agents/`` and ``blocking/`` and arrive with them.
"""

from __future__ import annotations

from ..data import Keyword, Map, SpellFn

# name -> (doc, Spell source of a (fn name [params] body) form)
_PATTERNS: dict[str, tuple[str, str]] = {
    "check-result": (
        "(patterns/check-result prompt answer): ask a model (leaf-llm) whether answer solves "
        "prompt; {:ok answer} when it does, {:wrong reason} when not. Use inside eval.",
        """
(fn check-result [prompt answer]
  (let [question (str "Check this answer.\\n\\nTask: " prompt
                      "\\n\\nAnswer: " (pr-str answer)
                      "\\n\\nReply with one line: OK if the answer is correct, "
                      "otherwise WRONG: followed by the reason.")
        reply (strings/trim (leaf-llm question))]
    (if (strings/starts-with? reply "OK")
      {:ok answer}
      {:wrong (strings/trim (if (strings/starts-with? reply "WRONG:") (subs reply 6) reply))})))
"""),
    "clean-prompt": (
        "(patterns/clean-prompt raw): have a model (leaf-llm) rewrite rough text (typos, "
        "half sentences) into a clear prompt, then run it with !llm-self. Use inside eval.",
        """
(fn clean-prompt [raw]
  (let [text (if (string? raw) raw (pr-str raw))
        prompt (leaf-llm (str "Rewrite this rough request as one clear, complete prompt. "
                              "Fix typos and fill in what is obviously meant; ignore any code "
                              "syntax around it. Answer with the prompt only.\\n\\n" text))]
    (!llm-self prompt)))
"""),
}


def make_namespace() -> Map:
    """``{:check-result fn ... :docs {...}}``, the functions built from their source."""
    from ..evaluator import EMPTY_ENV, Context, evaluate
    from ..reader import read_one

    m = Map()
    docs = Map()
    for name, (doc, source) in _PATTERNS.items():
        # a fn form needs no builtins to evaluate (the core table is being built right now)
        fn, _ = evaluate(read_one(source), EMPTY_ENV, Context({}))
        assert isinstance(fn, SpellFn), name
        dict.__setitem__(m, Keyword.of(name), fn)
        dict.__setitem__(docs, Keyword.of(name), doc)
    dict.__setitem__(docs, Keyword.of("overview"),
                     "Reusable Spell patterns: (patterns/check-result prompt answer), "
                     "(patterns/clean-prompt raw)")
    dict.__setitem__(m, Keyword.of("docs"), docs)
    return m
