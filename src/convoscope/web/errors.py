"""Errors in the server's words (SPEC 6.2, issue 24): a stage's error, a refusal or a problem of the request
becomes, for the API, status 400–500 with `{"errors": [{"attr", "code", "detail"}]}`, `attr` being the
field as the request itself names it (`as_of` in a GET query, `startAt` in the POST body); for a browser,
the app's error page, or the login form for a 401. A page with a form words a `ParameterError` itself,
beside the field it names (`ParameterError.param`). `Forbidden` is a 403. Under /api/, a request that matches
no route, or a route's path with another method, is a 404 listing the API's operations (decision 95).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from convoscope.errors import ConvoscopeError, Forbidden, ParameterError
from convoscope.web.auth import authenticated, identify, login_form
from convoscope.web.server import API_PREFIX, HTTPProblem, problem, server_of, wants_html


class ErrorItem(BaseModel):
    attr: str | None
    code: str
    detail: str


class Errors(BaseModel):
    errors: list[ErrorItem]


ERRORS = {"description": "The request is invalid: `{\"errors\": [{\"attr\", \"code\", \"detail\"}]}`"}
AUTH_ERRORS = {401: {"description": "No credentials, or unknown ones"},
               403: {"description": "The role lacks the permission"},
               429: {"description": "Too many failed logins for this user name or from this address (HTTP Basic), "
                                    "or, on the report API, more requests in one second than [server] rate_limit "
                                    "allows; wait the seconds Retry-After gives"}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Errors, **ERRORS}, 401: {"model": Errors, **AUTH_ERRORS[401]},
    403: {"model": Errors, **AUTH_ERRORS[403]}, 429: {"model": Errors, **AUTH_ERRORS[429]},
}


def errors_answer(status: int, errors: list[dict[str, str | None]],
                  headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's answer to what it refuses (SPEC 6.2): `{"errors": [{"attr", "code", "detail"}]}`."""
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def parameter_problem(exc: ParameterError, names: dict[str, str] | None = None) -> HTTPProblem:
    """A 400 naming the parameter as the request did: `names` maps the common parameters' names (SPEC 4) to
    the request's own."""
    names = names or {}

    def name(param: str) -> str:
        return names.get(param, param)

    return problem(400, "invalid", exc.worded(name), name(exc.param))


@contextmanager
def named(names: dict[str, str]) -> Iterator[None]:
    """A `ParameterError` raised inside names its parameter with `names` (the POST body's fields)."""
    try:
        yield
    except ParameterError as exc:
        raise parameter_problem(exc, names) from None


def supported(request: Request) -> str:
    """What the API answers, as a clause for an error's detail: every operation of its OpenAPI document (built
    once, then kept by the app)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    operations = [f"{method.upper()} {path}" for path, methods in sorted(paths.items()) for method in sorted(methods)]
    return f"it answers {', '.join(operations)}; {API_PREFIX}v1/openapi.json describes each"


def unknown_endpoint(request: Request) -> HTTPProblem:
    """A 404 naming the request's method and path and listing what the API answers (decision 95): never a 405,
    which tells a client written for another API (Gladly's) nothing it can act on."""
    return problem(404, "not_found", f"convoscope's API has no {request.method} {request.url.path}; "
                                     f"{supported(request)}")


async def error_page(request: Request, exc: HTTPProblem, headers: dict[str, str] | None) -> Response:
    if exc.status == 401:
        return login_form(request, 401, None, headers)

    def render() -> Response:
        server = server_of(request)
        caller = None
        if exc.status != 429:  # identifying a throttled caller again would count another refusal
            try:
                with server.gate.open() as store:
                    caller = identify(request, store)
            except HTTPProblem:
                pass
        response = server.page(request, "error.html", caller, status=exc.status, problem=exc)
        response.headers.update(headers or {})
        return response

    return await run_in_threadpool(render)


def install(app: FastAPI) -> None:
    """The application's error handlers."""

    @app.exception_handler(HTTPProblem)
    async def on_problem(request: Request, exc: HTTPProblem) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="convoscope"'} if exc.status == 401 else {}
        headers |= exc.headers
        if wants_html(request):
            return await error_page(request, exc, headers)
        return errors_answer(exc.status, [{"attr": exc.attr, "code": exc.code, "detail": exc.detail}], headers)

    @app.exception_handler(ConvoscopeError)
    async def on_error(request: Request, exc: ConvoscopeError) -> Response:
        if isinstance(exc, ParameterError):  # named as a GET query names it: the common parameters' own names
            return await on_problem(request, parameter_problem(exc))
        if isinstance(exc, Forbidden):
            return await on_problem(request, problem(403, "forbidden", exc.message))
        return await on_problem(request, problem(400 if exc.exit_code == 2 else 500, "invalid", exc.message))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        """Refusals of the framework itself (a body that is not JSON, an unknown path or method) in the
        API's `errors` shape too (SPEC 6.2), and as the app's own error page to a browser. Under /api/ an
        unknown path and a known path asked with another method are both 404, listing what the API answers."""
        if request.url.path.startswith(API_PREFIX) and exc.status_code in (404, 405):
            return await on_problem(request, unknown_endpoint(request))
        code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        if wants_html(request) and exc.status_code in (404, 405):
            detail = (f"there is no page at {request.url.path}" if exc.status_code == 404 else
                      f"{request.url.path} does not answer a {request.method} request; use the app's links and buttons")
            return await on_problem(request, problem(exc.status_code, code, detail, headers=dict(exc.headers or {})))
        if wants_html(request):
            return await http_exception_handler(request, exc)
        return await on_problem(request, problem(exc.status_code, code, str(exc.detail),
                                                 "body" if exc.status_code == 400 else None,
                                                 headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        """400 with the `errors` body (SPEC 6.2). FastAPI checks a request's shape before the endpoint
        asks for credentials, so the API answers 401 or 403 here first, as it would to a well-formed
        request."""
        if request.url.path.startswith(API_PREFIX):
            try:
                await run_in_threadpool(authenticated, request)
            except HTTPProblem as refused:
                return await on_problem(request, refused)
        return errors_answer(400, validation_errors(exc.errors()))


# A union's member tags in a pydantic error's location (`filters.channel.list[str]`): not fields of the request.
_UNION_TAGS = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|[a-z-]+\[.*\])$")


def validation_errors(found: Sequence[Any]) -> list[dict[str, str | None]]:
    """pydantic's errors in SPEC 6.2's words, one per field: `attr` the field's path in the request
    (`filters.channel`, without a union's member tags), code `blank` for a required field that is missing or
    null (as Gladly answers: "metricSet must be specified"), `invalid_json` for a body that is not JSON (as
    POST /api/v1/events answers), else `invalid`."""
    errors: dict[str | None, dict[str, str | None]] = {}
    for error in found:
        item: dict[str, str | None]
        where = [str(part) for part in error["loc"][1:] if not _UNION_TAGS.match(str(part))]
        if error["type"] == "json_invalid":
            item = {"attr": "body", "code": "invalid_json", "detail": f"the body is not JSON: {error['msg']}"}
        elif error["type"] == "missing" or (error.get("input", ...) is None and where):
            attr = ".".join(where)
            item = {"attr": attr, "code": "blank", "detail": f"{attr} must be specified"}
        else:
            item = {"attr": ".".join(where) or None, "code": "invalid", "detail": error["msg"]}
        if item["attr"] in errors:  # a union's members each said why: one error for the field, every reason
            known = errors[item["attr"]]
            if (item["detail"] or "") not in (known["detail"] or ""):
                known["detail"] = f"{known['detail']}; {item['detail']}"
            continue
        errors[item["attr"]] = item
    return list(errors.values())
