"""The offline model: deterministic rules (rules.py) behind a local Bedrock Runtime–compatible endpoint
(endpoint.py, served on its own thread by background.py). `MODEL_PROVIDER=offline` swaps only the endpoint:
the runtime still runs ChatBedrockConverse and botocore, so offline runs and tests take the production path.
"""
