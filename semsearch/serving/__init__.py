"""The index over HTTP: a FastAPI app over a long-lived service."""
