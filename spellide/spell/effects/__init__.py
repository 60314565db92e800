"""Effect namespaces and the machinery every effect goes through.

``io`` (workspace-confined files and, when a profile allows it, processes) and ``globals``
(per-run shared state) are plain Python functions over Spell values; ``gate`` wraps each of
them so that every call is keyed, recorded in the effect ``cache``, and can be replayed.
"""
