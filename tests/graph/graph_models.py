"""A user's model class for `--unit NAME=graph_models.EnvModel` (imported from the runner's
working directory or PYTHONPATH, as seldon-core-microservice imports MODEL_NAME)."""

import os

import numpy as np

SEEN = ("PREDICTIVE_UNIT_ID", "PREDICTIVE_UNIT_PARAMETERS", "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "PREDICTIVE_UNIT_METRICS_SERVICE_PORT", "PREDICTIVE_UNIT_IMAGE",
        "SELDON_DEPLOYMENT_ID", "PREDICTOR_ID", "FROM_CONTAINER")


class EnvModel:
    """Answers X * scale; metadata of its environment in tags, via a JSON-able result."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.loaded = False

    def load(self):
        self.loaded = True

    def predict(self, X, features_names):
        if isinstance(X, str):
            return {k: os.environ.get(k) for k in SEEN} | {"loaded": self.loaded}
        return np.asarray(X, dtype=float) * self.scale


class Forker:
    """Starts a worker in its own process group (as a unit's workers are) and writes the
    worker's pid to `pidfile`: a unit whose main process can die and leave a worker behind."""

    def __init__(self, pidfile: str):
        import subprocess
        import sys

        self.worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(pidfile, "w") as f:
            f.write(str(self.worker.pid))

    def predict(self, X, features_names):
        return X
