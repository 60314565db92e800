"""The run service (see ``service``): runs execute in child processes of the server,
their events are persisted and broadcast, and controls reach them through ``control``."""

from .controller import ActResult, IdeController, check_parse
from .service import (PROCESS_ID, RunRefused, active_runs, control, fork_run, get_active,
                      make_workspace, mark_interrupted_runs, record_of, resume_interrupted,
                      start_run, wait_for, workspace_path)

__all__ = ["ActResult", "IdeController", "check_parse", "PROCESS_ID", "RunRefused", "active_runs",
           "control", "fork_run", "get_active", "make_workspace", "mark_interrupted_runs",
           "record_of", "resume_interrupted", "start_run", "wait_for", "workspace_path"]
