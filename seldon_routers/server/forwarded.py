"""The client's original path, from the header a gateway forwards it in.

Behind Seldon's executor a router is always called at `/route` (gRPC: `.../Route`), so a
rule on the path would never see the URL the client asked for. Envoy (Istio, Ambassador)
keeps that URL in `x-envoy-original-path` when it rewrites a path; with `--path-header`
naming such a header, Request.path (and Request.query, when the value has a query string)
are read from it whenever a call carries it. Absent, the call's own path and query stand.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote

from ..errors import BadRequest, ConfigError

DEFAULT_PATH_HEADER = "x-envoy-original-path"
ENV = "SELDON_ROUTER_PATH_HEADER"
# An HTTP token that is also a valid gRPC metadata key: lower case, no "-bin" (binary) suffix.
_NAME = re.compile(r"[0-9a-z_.-]+")


def header_name(value: str, source: str = "--path-header") -> str:
    """The configured header name, lower-cased and checked; "" (disabled) stays ""."""
    name = value.strip().lower()
    if name and (not _NAME.fullmatch(name) or name.endswith("-bin")):
        raise ConfigError(f"{source}: {value!r} is not a header name usable over both REST and gRPC "
                          "(letters, digits, '-', '_', '.'; not ending in -bin)")
    return name


def resolve(values, header: str, path: str, query: dict) -> tuple[str, dict]:
    """(path, query) a router sees: those of the header's value when the call carries one.

    `values` are the header's values on this call (bytes or str). A value is the path part
    of a URL, as Envoy writes it: percent-decoded here as the transports decode their own
    path; its query string, when it has one ("?" present), replaces the call's query.
    """
    if not values:
        return path, query
    if len(values) > 1:
        raise BadRequest(f"header {header}: given {len(values)} times; expected one original path")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not value:  # an empty value says nothing: as if absent
        return path, query
    if not value.startswith("/"):
        raise BadRequest(f"header {header}: expected the client's original path, starting with '/', "
                         f"got {value[:200]!r}")
    raw_path, has_query, raw_query = value.partition("?")
    return unquote(raw_path), (parse_qs(raw_query, keep_blank_values=True) if has_query else query)


def metadata_values(pairs, header: str) -> list:
    """The values of `header` among gRPC metadata pairs (keys arrive lower-case)."""
    return [value for key, value in pairs or () if key == header]
