"""The environment of the processes tests start."""

from __future__ import annotations

import os

# the suite's own settings (see conftest.py): the engine the tests run models on, and the
# folder converted models go to, never the user's
SUITE = ("SEMSEARCH_RUNTIME", "SEMSEARCH_CACHE_DIR")


def child_environment() -> dict[str, str]:
    """This process's environment without the user's SEMSEARCH_ settings, the suite's kept."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_") or k in SUITE}
