"""The engine: everything torch (runs, training, snapshots, evaluation, storage); it imports no web."""
