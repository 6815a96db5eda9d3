"""exto: the command-line client for the Exto Data API."""

__version__ = "0.1.0"
