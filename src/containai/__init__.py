"""cai (ContainAI): a persistent, isolated Docker container per workspace for AI agents."""

__version__ = "0.1.0"
