"""HTTP and WebSocket routes of the API."""
