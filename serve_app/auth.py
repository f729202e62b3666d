"""API keys on HTTP: every ``/api/v1`` route needs ``Authorization: Bearer <key>`` (docs/api.md).

A key (:mod:`engine.keys`) belongs to a tenant and carries scopes. :func:`principal`
resolves the presented key with :func:`engine.store.key_principal` through the
replica's pool: missing, malformed, unknown or revoked -> 401 with
``WWW-Authenticate: Bearer`` (:class:`serve_app.api.Unauthenticated`). An accepted
key is remembered by the replica (``Ingress.accepted_keys``) for ``auth.cache_seconds``
(configs/service.yaml), so a revoked key stops working within that time; a refused one is never remembered
(a new key works at once). :func:`authorized` checks the scope: ``read`` for GET,
``write`` for POST/PUT (ingest, generate, import), or a named one (``admin``);
lacking -> 403.

A router of ``/api/v1`` routes is made with :func:`api_router` (every route requires a
key: read for GET, write otherwise; 401/403 documented; the request then counts as one of its
tenant's in flight, :func:`admitted`: 429 beyond ``http.max_ongoing_per_tenant``), and a route takes the caller
as ``who: Caller`` and passes ``who.tenant_id`` to every store call, so another
tenant's objects answer 404 like unknown ones.
"""

import time
from collections import namedtuple
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer

from engine import keys, store, validation
from serve_app import admission
from serve_app.api import Unauthenticated, ingress, ref

READ_METHODS = ("GET", "HEAD")
CACHE_MAX_KEYS = 10_000  # accepted keys remembered per replica (forgotten all at once beyond)
AUTH_RESPONSES = {
    401: {"description": "Missing, malformed, unknown or revoked API key (WWW-Authenticate: Bearer)",
          "content": {"application/json": {"schema": ref("Error")}}},
    403: {"description": "The API key lacks the scope of this operation",
          "content": {"application/json": {"schema": ref("Error")}}},
}


#: Who a request's key is: its tenant, its scopes, its public key id (for logs).
Principal = namedtuple("Principal", ["tenant_id", "scopes", "key_id"])

#: The ``Authorization: Bearer <key>`` security scheme, declared so that the OpenAPI document names
#: it and the operations that need it; the header itself is parsed by :func:`engine.keys.bearer_key`.
BEARER = HTTPBearer(auto_error=False, scheme_name="ApiKey", bearerFormat="pvc_<key_id>_<secret>",
                    description="API key of a tenant (`pvcast keys create`), sent as `Authorization: Bearer <key>`. "
                                "Scopes: read (operations that read), write (operations that store or forecast; "
                                "implies read), admin (implies write)")


async def principal(request: Request, _scheme: Annotated[object, Depends(BEARER)], service=Depends(ingress)):
    """The :class:`Principal` of the request's key (FastAPI dependency, resolved once per request).

    Raises
    ------
    Unauthenticated
        No bearer header, a malformed key, an unknown or a revoked one (401).
    """
    key = keys.bearer_key(request.headers.get("authorization"))
    if key is None:
        raise validation.field_error("authorization", "an API key is required: `Authorization: Bearer <key>`",
                                     Unauthenticated)
    digest, now, accepted = keys.hash_key(key), time.monotonic(), service.accepted_keys
    expiry, who = accepted.get(digest, (0.0, None))
    if who is not None and now < expiry:
        request.state.principal = who  # the tenant of the request's limits (serve_app.api.body_chunks)
        return who
    found = await store.key_principal(service.pool, key)
    if found is None:
        accepted.pop(digest, None)
        raise validation.field_error("authorization", "unknown or revoked API key", Unauthenticated)
    if len(accepted) >= CACHE_MAX_KEYS:
        accepted.clear()
    who = Principal(found[0], found[1], keys.key_id_of(key))
    accepted[digest] = (now + float(service.settings["auth"]["cache_seconds"]), who)
    request.state.principal = who
    return who


def authorized(scope=None):
    """A dependency: the request's :class:`Principal`, whose key holds ``scope``.

    Parameters
    ----------
    scope : {'read', 'write', 'admin'}, optional
        None: ``read`` for GET and HEAD, ``write`` for every other method.

    Raises
    ------
    PermissionError
        The key lacks the scope (403, field ``authorization``).
    """
    async def check(request: Request, who: Annotated[Principal, Depends(principal)]):
        needed = scope or ("read" if request.method in READ_METHODS else "write")
        if not keys.has_scope(who.scopes, needed):
            raise validation.field_error("authorization", f"API key {who.key_id} has scopes {list(who.scopes)}; "
                                         f"{request.method} {request.url.path} needs {needed!r}", PermissionError)
        return who
    return check


#: A route's caller (same resolution as the router's check: FastAPI resolves a dependency once per request).
Caller = Annotated[Principal, Depends(principal)]


async def admitted(who: Caller, service=Depends(ingress)):
    """A dependency: the request counts as one of its tenant's in flight until it ends
    (:func:`serve_app.admission.tenant_request`: 429 beyond ``http.max_ongoing_per_tenant``).

    Every key of a tenant counts against its tenant's bound, whatever its scopes (an admin key too).
    """
    with admission.tenant_request(service, who.tenant_id):
        yield who


def api_router(prefix, **kwargs):
    """An ``APIRouter`` whose every route needs a key with the method's scope (:func:`authorized`) and counts as
    one of its tenant's requests in flight (:func:`admitted`; after the key's checks: 401/403 first).

    A route that needs more (``admin``) adds ``Depends(authorized("admin"))``.
    """
    return APIRouter(prefix=prefix, dependencies=[Depends(authorized()), Depends(admitted)],
                     responses={**AUTH_RESPONSES, **kwargs.pop("responses", {})}, **kwargs)
