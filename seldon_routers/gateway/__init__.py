"""`seldon-router gateway`: an OpenAI-compatible front door that asks a router which pod
serves each request, forwards it there, streams the answer back, and tells the router
when (and with what usage) it ended."""
