"""docqa: ask a document questions and get short answers with the passages they came from."""

__version__ = "0.1.0"
