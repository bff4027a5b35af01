"""PubMed Watcher: new PubMed papers for your searches, one digest email per recipient."""

__version__ = "0.1.0"
