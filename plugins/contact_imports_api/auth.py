"""Who is calling and what they may do: Airflow's own authentication and authorisation.

The caller's JWT (`Authorization: Bearer`, from /auth/token, or the Airflow UI's session
cookie) is checked by Airflow's auth manager. What a user may do follows what they may
do with the import DAG's runs: read them (GET) to list and read imports; trigger them
(POST) to upload and cancel. A new import is a DAG run triggered through Airflow's REST
API with the caller's token, so Airflow checks that too.

Which workspaces a caller may use is the library's rule (contact_import.workspaces): this
module hands it the user's name and roles as the auth manager gives them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contact_import import workspaces
from contact_import.endpoints import IMPORT_DAG_ID

bearer = HTTPBearer(auto_error=False, description="A JWT from Airflow's POST /auth/token; in a browser"
                                                  " signed in to Airflow, the UI's session cookie is enough.")


@dataclass(frozen=True)
class Caller:
    user: Any  # Airflow's BaseUser
    token: str  # passed on to Airflow's REST API

    @property
    def access(self) -> workspaces.User:
        """The user as the workspaces' access sees them: the name Airflow records on the DAG
        runs the user triggers, and the user's roles."""
        return workspaces.User.of(self.user.get_name(), role_names(self.user))


def role_names(user: Any) -> list[str]:
    """The roles an auth manager's user has: SimpleAuthManager's user has one (`role`), FAB's
    a list (`roles`, each with a `name`); a user of another auth manager has none here, so
    only its name counts."""
    names = [getattr(role, "name", role) for role in getattr(user, "roles", None) or ()]
    role = getattr(user, "role", None)
    return [str(n) for n in (*names, role) if n]


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The user behind the request's JWT; 401 when there is none or it is not valid."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import get_user

    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:  # Airflow answers a forged token with 403; it is not a known caller
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"not authenticated: {exc.detail}",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    token = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    return Caller(user, token)


def require(who: Caller, method: str) -> None:
    """403 unless Airflow's auth manager lets `who` use `method` on the import DAG's runs."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not get_auth_manager().is_authorized_dag(method=method, access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=IMPORT_DAG_ID), user=who.user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not allowed to {method} runs of DAG {IMPORT_DAG_ID}")


# Plain functions: FastAPI runs them in its thread pool (an auth manager may ask a database).
def reader(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """May read imports: may read the import DAG's runs."""
    require(who, "GET")
    return who


def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """May upload and cancel: may trigger the import DAG's runs."""
    require(who, "POST")
    return who


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
