"""The HTTP server: `build_app` (app.py) around a `Runtime` (runtime.py); the body read once (body.py), bearer
tokens (auth.py), invocation slots (capacity.py), SSE and JSON responses (responses.py), bounded connections
(connections.py), the event loop's executor (executor.py), the allocator (allocator.py), and the process
(main.py). ARCHITECTURE.md draws a request's way in and a stream's way out.
"""
