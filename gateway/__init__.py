"""gateway: the loxo process. Configuration, the ASGI app, the server and the CLI."""
