"""seldon-routers: router microservices for Seldon inference graphs.

Importing this package loads the router classes only (numpy and the standard library),
so `seldon-core-microservice seldon_routers.ABTest --service-type ROUTER` works in
Seldon's own environment. The server lives in seldon_routers.server and loads lazily.
"""

from .additive import AdditiveState
from .errors import BadRequest, ConfigError, NoRoute, RouterError
from .request import Feedback, Request
from .router import ALL_CHILDREN, NO_CHILDREN, Decision, Router
from .routers.ab_test import ABTest
from .routers.canary import Canary
from .routers.bandits.epsilon_greedy import EpsilonGreedy
from .routers.bandits.linear import LinUCB
from .routers.bandits.thompson import ThompsonSampling
from .routers.bandits.ucb import UCB1
from .routers.classifier import ClassifierRouter  # torch/onnxruntime load only with a model
from .routers.llm.router import LLMRouter
from .routers.llm.strategies import (LeastKVCache, LeastLatency, LeastRequest, PowerOfTwo, PrefixCache,
                                     SessionAffinity, SLO, Throughput)
from .routers.rules import RuleRouter
from .routers.time_of_day import TimeOfDay

__all__ = [
    "AdditiveState",
    "ALL_CHILDREN",
    "NO_CHILDREN",
    "ABTest",
    "Canary",
    "ClassifierRouter",
    "EpsilonGreedy",
    "LeastKVCache",
    "LeastLatency",
    "LeastRequest",
    "LLMRouter",
    "PowerOfTwo",
    "PrefixCache",
    "SessionAffinity",
    "SLO",
    "Throughput",
    "LinUCB",
    "RuleRouter",
    "ThompsonSampling",
    "TimeOfDay",
    "UCB1",
    "BadRequest",
    "ConfigError",
    "NoRoute",
    "Decision",
    "Feedback",
    "Request",
    "Router",
    "RouterError",
]
