"""LangGraphAgentCore: a LangGraph agent served as an AWS Bedrock AgentCore Runtime entrypoint over SSE.

Kept empty on purpose: `python -m bedrock.agent_runtime` is on the cold-start path of every new
AgentCore session, so nothing is imported here that a module does not ask for itself.
"""
