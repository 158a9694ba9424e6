"""ocm: the OpenCode TUI on your laptop, every prompt on a shared Manager."""

__version__ = "0.1.0"
