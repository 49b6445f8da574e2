"""What the node is doing: the snapshot, its rendering, the local status API, metrics."""
