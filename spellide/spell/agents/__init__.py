"""The multi-agent runtime of a run (spell-agents.md): the coordinator (``coordinator``), the
message-receipt rewrite (``receipt``), the actors that run agent lifecycles in threads
(``runtime``), the ``agents/`` namespace a program calls (``namespace``), and where futures
meet agents: ``!ask-await`` and ``blocking/request`` (``future_waits``; the futures
themselves are ``spellide/spell/futures.py``, ``blocking/`` is ``effects/blocking.py``)."""
