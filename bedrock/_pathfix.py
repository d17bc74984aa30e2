"""Make `import bedrock` work when a module is imported flat from inside `bedrock/`.

The guide runs `cd bedrock && python3 test_streaming.py` and `from agent_runtime import stream_agent`,
and agentcore's direct-code deploy runs `bedrock/agent_runtime.py` as a script; in each case the project
root is not on `sys.path`, so the package imports the modules use would fail without this.
"""

import sys
from pathlib import Path

_root = str(Path(__file__).resolve().parent.parent)
if _root not in sys.path:
    sys.path.insert(0, _root)
