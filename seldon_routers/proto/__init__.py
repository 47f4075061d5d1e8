"""Generated protobuf code (scripts/gen_protos.sh); never edited by hand, never re-exported.

Only the server side imports this package: router classes must not, so that they load
under seldon-core-microservice, whose own `seldon.protos` symbols would clash.
"""
