"""SeldonMessage (JSON and protobuf) <-> the request view, and reply builders.

Server-side only: routers never import this package.
"""
