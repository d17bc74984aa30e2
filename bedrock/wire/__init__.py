"""The wire: event names and frames (`events`), reading them back (`decoding`), token batching (`batching`),
a turn's result as the fold of its events (`result`), and the contract's HTTP headers (`headers`).

Depends on nothing else in the package, so clients and servers share it.
"""
