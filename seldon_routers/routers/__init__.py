"""Built-in routers, one module each."""
