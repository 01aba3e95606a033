"""The control socket: versioned JSON lines between hosts/CLI and the supervisor."""
