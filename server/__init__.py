"""The nn.Linear playground: a Flask + Flask-SocketIO server around a real PyTorch network."""
from .app import create_app

__all__ = ["create_app"]
