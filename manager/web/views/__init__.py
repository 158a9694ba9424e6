"""One module per kind of console page, each with its blueprint ``bp``."""
