"""The ASGI entry point: `uvicorn api_stub.main:app` (settings are read at startup)."""

from api_stub.app import create_app

app = create_app()
