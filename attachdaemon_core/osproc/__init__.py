"""The only modules that touch /proc and process syscalls: identity, spawn, pidfiles, paths."""
