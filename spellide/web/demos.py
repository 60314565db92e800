"""The bundled demo agents (``spellide/demos/*.json``): scripted models that need no API key.

A demo file is both the manifest and the scripted model's file (``ScriptedModel.from_file``
reads its ``completions``)::

    {"title": ..., "description": ..., "order": 1,
     "prompt": "..." | "program": "(...)",
     "completions": ["...", {"text": "...", "latency": 0.2}, ...]
                  | {"main": [...], "w": [...]},   # a multi-agent demo: each agent's own
                                                     # completions, by handle without the colon
     "workspace": "name-of-a-folder-in-spellide/demos/workspaces" | true | false,
     "config": {"depth": 20, "budget": 0, "breakpoints": {...}},
     "record": true}      # load_demos executes it once so there is a recorded run to browse
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from django.conf import settings

from spellide.spell.api import Breakpoints, RunConfig


@dataclass
class Demo:
    name: str
    path: Path
    title: str
    description: str = ""
    prompt: Optional[str] = None
    program: Optional[str] = None
    workspace: Any = False
    config: dict[str, Any] = field(default_factory=dict)
    order: int = 100
    record: bool = False
    agents: tuple[str, ...] = ()   # a multi-agent demo's scripted handles (":main", ...)

    @property
    def model_spec(self) -> str:
        return f"scripted:{self.path}"

    @property
    def workspace_seed(self) -> Optional[Path]:
        if isinstance(self.workspace, str) and self.workspace:
            p = demos_dir() / "workspaces" / self.workspace
            return p if p.is_dir() else None
        return None

    @property
    def uses_workspace(self) -> bool:
        return bool(self.workspace)

    def run_config(self, workspace: Optional[str] = None, **overrides: Any) -> RunConfig:
        cfg = dict(self.config)
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        bp = cfg.pop("breakpoints", None)
        config = RunConfig(prompt=self.prompt, init=self.program, model=self.model_spec,
                           workspace=workspace)
        for k, v in cfg.items():
            if hasattr(config, k) and k not in ("model", "workspace", "prompt", "init"):
                setattr(config, k, v)
        if bp is not None:
            config.breakpoints = bp if isinstance(bp, Breakpoints) else Breakpoints.from_json(bp)
        return config


def demos_dir() -> Path:
    return Path(getattr(settings, "DEMOS_DIR", Path(__file__).resolve().parents[1] / "demos"))


def _load(path: Path) -> Optional[Demo]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not _script_ok(data.get("completions")):
        return None
    script = data["completions"]
    return Demo(name=path.stem, path=path.resolve(), title=str(data.get("title") or path.stem),
                description=str(data.get("description") or ""), prompt=data.get("prompt"),
                program=data.get("program"), workspace=data.get("workspace") or False,
                config=dict(data.get("config") or {}), order=int(data.get("order") or 100),
                record=bool(data.get("record")),
                agents=tuple(f":{h}" for h in script) if isinstance(script, dict) else ())


def _script_ok(script: Any) -> bool:
    """A scripted model's completions: one list for the run, or (a multi-agent demo) an
    object of lists by agent handle without its colon (``"main"`` for the root)."""
    if isinstance(script, list):
        return True
    return (isinstance(script, dict) and bool(script)
            and all(isinstance(k, str) and k and not k.startswith(":") and isinstance(v, list)
                    for k, v in script.items()))


def list_demos() -> list[Demo]:
    d = demos_dir()
    demos = [x for x in (_load(p) for p in sorted(d.glob("*.json"))) if x is not None] if d.is_dir() else []
    return sorted(demos, key=lambda x: (x.order, x.name))


def get_demo(name: str) -> Optional[Demo]:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    p = demos_dir() / f"{name}.json"
    return _load(p) if p.is_file() else None
