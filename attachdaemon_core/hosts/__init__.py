"""The host side: runtime directory, reader child, dev servers, gunicorn hooks, commands, CLI."""
