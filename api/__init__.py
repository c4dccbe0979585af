"""Serving: FastAPI REST and WebSocket."""
