"""The semsearch command: a typer app (``app``) and its console entry point (``main``)."""

from .app import app, main

__all__ = ["app", "main"]
