"""Admin actions over REST, `POST /admin/<action>`: off unless a bearer token is configured
(--admin-token-file, or $SELDON_ROUTER_ADMIN_TOKEN), and then only with that token,
compared in constant time. --restrict-state puts GET /state behind the same token.

Actions change this process's router only, so the CLI refuses them with --workers > 1, and
those that would make one replica differ from the others refuse a shared (redis) store.
Each answers the router's state after it, and is logged (never the token). docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from typing import Callable, Optional

from ..codec import replies
from ..errors import BadRequest, Conflict, ConfigError, MethodNotAllowed, NotFound, Unauthorized

log = logging.getLogger("seldon_routers")

TOKEN_ENV = "SELDON_ROUTER_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16  # characters: a token shorter than a 64-bit random value is refused


def _digest(token: str) -> bytes:
    # Compared as digests: equal lengths whatever was sent, so the time says nothing of the token.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _checked(token: str, source: str) -> bytes:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{source}: the admin token is {len(token)} characters; use at least "
                          f"{MIN_TOKEN_LENGTH} random ones (e.g. `openssl rand -hex 32`)")
    return _digest(token)


class Token:
    """The admin bearer token, from a file (re-read when it changes: a rotated Kubernetes
    secret applies without a restart) or from the environment."""

    def __init__(self, path: Optional[str] = None, value: Optional[str] = None):
        self.path = path
        self._seen = None
        self._digest = _checked(value, f"${TOKEN_ENV}") if path is None else self._read()

    def _read(self) -> bytes:
        try:
            stat = os.stat(self.path)
            with open(self.path, encoding="utf-8") as f:
                digest = _checked(f.read(), f"--admin-token-file {self.path}")
        except OSError as exc:
            raise ConfigError(f"--admin-token-file: cannot read {self.path} ({exc.strerror or exc})") from None
        self._seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        return digest

    def _current(self) -> Optional[bytes]:
        if self.path is None:
            return self._digest
        try:
            stat = os.stat(self.path)
            if (stat.st_mtime_ns, stat.st_size, stat.st_ino) != self._seen:
                self._digest = self._read()
        except (OSError, ConfigError) as exc:  # gone or too short now: refuse everyone until it is fixed
            log.error("admin token: %s; admin calls are refused until it is readable", getattr(exc, "message", exc))
            return None
        return self._digest

    def matches(self, authorization: Optional[str]) -> bool:
        scheme, _, presented = (authorization or "").partition(" ")
        current = self._current()
        if current is None or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(presented.strip()), current)


def token_from(path: Optional[str], environ=os.environ) -> Optional[Token]:
    """The configured token, or None (admin off): a file wins over the environment."""
    if path:
        return Token(path=path)
    value = environ.get(TOKEN_ENV)
    return Token(value=value) if value else None


class Admin:
    """The actions, over one DataPlane. `rebuild` makes a new router from the parameters the
    server started with (re-reading any file they name)."""

    def __init__(self, token: Token, rebuild: Optional[Callable] = None, restrict_state: bool = False):
        self.token, self.rebuild, self.restrict_state = token, rebuild, restrict_state

    def authorize(self, headers, what: str) -> None:
        if not self.token.matches(headers.get("authorization")):
            log.warning("admin: %s refused: no valid bearer token", what)
            raise Unauthorized(f"{what} needs the admin bearer token (Authorization: Bearer ...)")

    def actions(self, dp) -> list:
        return [name for name, (needs, _) in ACTIONS.items() if needs(dp.router)]

    async def call(self, dp, action: str, method: str, headers, body: bytes) -> bytes:
        if action == "" and method in ("GET", "HEAD"):  # GET /admin: what this router offers
            self.authorize(headers, "GET /admin")
            return replies.dumps({"router": dp.name, "actions": self.actions(dp)})
        entry = ACTIONS.get(action)
        if entry is None:
            raise NotFound(f"no admin action {action!r}; one of {', '.join(ACTIONS)}")
        self.authorize(headers, f"POST /admin/{action}")
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed on /admin/{action}; use POST")
        needs, act = entry
        if not needs(dp.router):
            raise Conflict(f"/admin/{action}: router {dp.name} has no such action")
        changed = await act(self, dp, _json_body(body, action))
        log.warning("admin: %s on router %s (%s)", action, dp.name, "changed" if changed else "no change")
        return replies.dumps({"action": action, "changed": changed, "state": dp.router.state()})


def _json_body(body: bytes, action: str) -> dict:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"/admin/{action}: the body is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"/admin/{action}: expected a JSON object, got {type(value).__name__}")
    return value


def _not_shared(dp, action: str) -> None:
    if dp.store.shared:
        raise Conflict(f"/admin/{action}: the state is shared in {dp.store.kind} by every replica; change it "
                       "there or roll the deployment, so that replicas never disagree")


async def _persist(dp) -> None:
    """The change is made: a store that cannot write it now says so, and its next snapshot does."""
    try:
        await dp.store.persist()
    except ConfigError as exc:
        log.error("admin: the change is made but not yet persisted: %s", exc.message)


def _new_router(admin, action: str):
    if admin.rebuild is None:
        raise Conflict(f"/admin/{action}: this server was not started from parameters it can read again")
    try:
        return admin.rebuild()
    except ConfigError as exc:  # the old router stays
        raise BadRequest(f"/admin/{action}: the configuration does not build: {exc.message}") from None


async def _reset_state(admin, dp, body) -> bool:
    _not_shared(dp, "reset-state")
    fresh = _new_router(admin, "reset-state").state()
    dp.router.load_state(fresh)
    await _persist(dp)
    return True


async def _set_weights(admin, dp, body) -> bool:
    if "weights" not in body:
        raise BadRequest('/admin/weights: expected {"weights": [w, ...] or {"branch": w, ...}}')
    try:
        dp.router.set_weights(body["weights"])
    except ConfigError as exc:
        raise BadRequest(exc.message) from None
    return True


async def _promote(admin, dp, body) -> bool:
    _not_shared(dp, "promote")
    changed = dp.router.promote(str(body.get("reason") or "promoted by an operator")[:200])
    await _persist(dp)
    return changed


async def _rollback(admin, dp, body) -> bool:
    _not_shared(dp, "rollback")
    changed = dp.router.rollback(str(body.get("reason") or "rolled back by an operator")[:200])
    await _persist(dp)
    return changed


async def _reload_config(admin, dp, body) -> bool:
    _not_shared(dp, "reload-config")
    if dp.router.has_hook("register_metrics"):
        raise Conflict(f"/admin/reload-config: router {dp.name} registers metrics of its own; restart it instead")
    new = _new_router(admin, "reload-config")
    if dp.router.restores and new.restores:  # the learned state carries over, or nothing changes
        try:
            new.load_state(dp.router.state())
        except ConfigError as exc:
            raise Conflict(f"/admin/reload-config: the new configuration cannot take the learned state "
                           f"({exc.message}); reset it, or restart with --state memory") from None
    dp.replace_router(new)
    await _persist(dp)
    return True


def _always(router) -> bool:
    return True


ACTIONS = {
    "reset-state": (lambda r: r.restores, _reset_state),
    "weights": (lambda r: callable(getattr(r, "set_weights", None)), _set_weights),
    "promote": (lambda r: callable(getattr(r, "promote", None)), _promote),
    "rollback": (lambda r: callable(getattr(r, "rollback", None)), _rollback),
    "reload-config": (_always, _reload_config),
}
