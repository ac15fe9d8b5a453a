"""REST API (FastAPI) around the tracking intake; OpenAPI at /docs."""
