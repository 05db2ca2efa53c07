"""Your own PyTorch network, in your own training loop, on the nn.Linear playground's page:

    from linear_playground import watch
    run = watch(model, "http://127.0.0.1:5000", name="my mlp")
    ...  run.step(loss=loss.item())  after each step
    run.close()
"""
from .watch import WatchedRun, watch

__all__ = ["watch", "WatchedRun"]
__version__ = "0.1.0"
