"""The agent: a turn's life (`turn`), built from a model (`model`), tools (`tools`), a graph (`graph`) and a
store (`bedrock.store`: checkpointer, owners, locks across processes) by `build`; what keeps turns honest — sessions
one turn at a time (`sessions`), owned by their actor (`ownership`), bounded in time (`deadlines`), rolled back when
cut (`rollback`). The request a turn serves is the wire's (`bedrock.wire.request`). No HTTP here: the server and the
in-process API both drive `Agent`.
"""
