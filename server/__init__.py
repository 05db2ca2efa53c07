"""The nn.Linear playground: a Flask + Flask-SocketIO web tier in front of a training engine
that owns a real PyTorch network (docs/architecture.md)."""


def create_app(config=None, *, dataset=None, start=None):
    """The web app (server/web/app.py) with this machine's engines (server/engine/entry.py):
    processes of their own, or threads of this process when a test hands in a `dataset`.
    Imported on use, so the engine process, which imports this package too, never loads the
    web libraries."""
    from .engine.entry import LocalEngines
    from .web.app import create_app as create
    return create(config, engines=LocalEngines(dataset), start=start)


__all__ = ["create_app"]
