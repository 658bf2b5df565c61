"""Synthesis: an execution engine for plans of commands, HTTP calls and MCP tool calls."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthesis")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
