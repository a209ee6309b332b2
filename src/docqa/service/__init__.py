"""The HTTP service: create_app(settings) -> FastAPI, and serve() to run it."""

from docqa.service.app import create_app
from docqa.service.server import serve

__all__ = ["create_app", "serve"]
