"""The README's custom router: wide requests go to child 0, narrow ones to child 1.

    seldon-router serve examples.custom.my_router.MyRouter    (from the repository root)
"""

from seldon_routers import Router


class MyRouter(Router):
    n_children = 2  # optional: lets the server reject any other route as a bug

    def route(self, features, feature_names, **kwargs):
        return 0 if features.shape[1] > 3 else 1
