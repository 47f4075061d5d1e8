"""The serving side: one dataplane, thin REST and gRPC transports, one process."""
