"""attachdaemon's framework-free core: declarations, the supervisor, its control socket and CLI.

Never imports Django or Flask.
"""

__version__ = "0.1.0"
