"""`seldon-router graph run`: a SeldonDeployment's graph on one machine, with the semantics
of Seldon Core 1.18.2's executor (a development and test tool; docs/graph-runner.md).

deployment  the YAML file to typed units (checked, errors name the field)
executor    the walk over the graph: input call, route, children, aggregate, output call
client      REST calls to units (httpx), errors as the executor reports them
launcher    the unit processes: routers by `seldon-router serve`, models by stub_model
stub_model  the default MODEL unit (and a user's class), a small Seldon-protocol server
front       the ASGI app clients call: /api/v1.0/predictions and /api/v1.0/feedback
cli         the subcommand's arguments and its run
"""
