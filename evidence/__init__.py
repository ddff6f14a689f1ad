"""evidence: a clinical evidence reference manager for IASTM studies (the library behind the CLI)."""

__version__ = "0.1.0"
