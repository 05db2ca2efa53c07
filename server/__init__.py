"""The nn.Linear playground: a Flask + Flask-SocketIO web tier in front of a training engine
that owns a real PyTorch network (docs/architecture.md)."""


def create_app(*args, **kwargs):
    """The web app (server/web/app.py); imported on use, so the engine process, which imports
    this package too, never loads the web libraries."""
    from .web.app import create_app as create
    return create(*args, **kwargs)


__all__ = ["create_app"]
