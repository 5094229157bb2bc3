"""The observer's MCP server (streamable HTTP at /mcp): the query API as tools for AI agents."""

from observer.mcp.server import McpApp, build_mcp_app, mount_mcp

__all__ = ["McpApp", "build_mcp_app", "mount_mcp"]
