"""What the HTTP routes depend on (`Annotated[..., Depends()]`), so tests can override each one:
the process's Resources, kept on `app.state`, and the account an API key names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from retainwise.adapters import accounts
from retainwise.adapters.resources import Resources
from retainwise.entrypoints.limits import check_rate

API_KEY = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from your operator: `rw_<key id>_<secret>`.",
)
UNAUTHORIZED = "a valid API key is required: send Authorization: Bearer rw_<key id>_<secret>"


def get_resources(request: Request) -> Resources:
    """One Resources per API worker, set by create_app: engines and clients shared by requests."""
    return request.app.state.resources


Env = Annotated[Resources, Depends(get_resources)]


def current_account(
    request: Request,
    env: Env,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY)],
) -> accounts.Account:
    """The authenticated account, or 401 with one message for every reason a key fails; 429
    past the key's request rate."""
    account = accounts.authenticate(env.engine, credentials.credentials) if credentials else None
    if account is None or credentials is None:
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    key_id, _ = accounts.parse_key(credentials.credentials) or ("", "")
    check_rate(request, key_id)
    return account


CurrentAccount = Annotated[accounts.Account, Depends(current_account)]
