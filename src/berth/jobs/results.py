"""Result types shared by the jobs: Docker's JSON documents, typed where their shape is fixed."""

from __future__ import annotations

from typing import Any, TypedDict

JSONObject = dict[str, Any]
JSONList = list[dict[str, Any]]
Filters = dict[str, list[str]]
ApiVersion = tuple[int, int]
DEFAULT_API_VERSION: ApiVersion = (1, 45)


class Created(TypedDict):
    """``POST /containers/create``: the new container's id and the create's warnings."""

    Id: str
    Warnings: list[str]


class IdOnly(TypedDict):
    """A new exec instance's or image's id."""

    Id: str


class Warnings(TypedDict):
    Warnings: list[str]


class AuthResult(TypedDict):
    IdentityToken: str
    Status: str
