"""The multi-agent runtime of a run (spell-agents.md): the coordinator (``coordinator``), the
message-receipt rewrite (``receipt``), the actors that run agent lifecycles in threads
(``runtime``) and the ``agents/`` namespace a program calls (``namespace``)."""
