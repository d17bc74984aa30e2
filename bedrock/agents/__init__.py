"""Agents that ship with the runtime, each a graph module loaded as any user's is (bedrock/core/loader.py)."""
