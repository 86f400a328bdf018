"""The domain of the app: plain Python that knows nothing of azure.functions."""

__all__: list[str] = []
