"""One module per command group; each exposes plain functions with keyword arguments."""
