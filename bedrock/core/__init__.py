"""The agent: a turn's life (`turn`), built from a model (`model`), tools (`tools`), a graph (`graph`) and a
checkpointer (`memory`) by `build`; what keeps turns honest — sessions one turn at a time (`sessions`), owned by
their actor (`ownership`), bounded in time (`deadlines`), rolled back when cut (`rollback`) — and the request a
turn serves (`request`). No HTTP here: the server and the in-process API both drive `Agent`.
"""
