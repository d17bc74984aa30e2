"""What the tests and the benchmarks share, and the package does not ship: the dummy-AWS offline environment
(`env`), the real app served in a subprocess on a free loopback port (`live_server`, `serve`), and a chat model
that runs the offline rules without botocore (`chat_models`). Importable from the repository root (pytest's
`pythonpath`, `python -m bench.…`).
"""
