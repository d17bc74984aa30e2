"""Tools from MCP servers (MCP_SERVERS), with their outbound credentials, every call bounded.

    servers.py   MCP_SERVERS read and checked: the adapters' connection map, `${VAR}`s filled in
    auth.py      a server's `auth`: a static bearer, OAuth 2.0 client credentials (Authlib), AgentCore Identity
    calls.py     CallBounds: every call within MCP_TOOL_TIMEOUT_S, failures as error results, results cut to size
    tools.py     the tools listed at the agent's build (langchain-mcp-adapters); names checked

A graph gets them as its factory's `mcp_tools` argument (bedrock/core/loader.py); the built-in agent offers them
beside `calculator`. Nothing here is imported unless MCP_SERVERS is set.
"""

from bedrock.mcp.auth import CredentialError, TokenAuth, outbound_auth
from bedrock.mcp.calls import CallBounds
from bedrock.mcp.servers import ServerSpec, read_servers
from bedrock.mcp.tools import McpTools, check_names, mcp_tools_for

__all__ = ["CallBounds", "CredentialError", "McpTools", "ServerSpec", "TokenAuth", "check_names", "mcp_tools_for",
           "outbound_auth", "read_servers"]
