"""Serving over HTTP: the FastAPI app, its schemas, the index watcher, the Ray Serve deployments."""
