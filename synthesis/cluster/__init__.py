"""A server as a node of a cluster on one database (docs/cluster.md): its heartbeat and
judgement of the others (`node.py`), the tail of events and wake-ups from the other nodes
(`tail.py`), and the gate that holds steps while the node may be presumed dead."""
