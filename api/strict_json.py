"""Request bodies read strictly: JSON media type only, bounded nesting, no duplicate keys, no NaN.

Litestar decodes a body to Python objects first and converts them to the msgspec Struct after, so
a body nested a thousand levels deep used to reach the decoder's recursion limit and answer 500.
`StrictRequest.json` measures the nesting before any decoder runs and refuses deep bodies with
400; it also refuses what the OpenAPI schema does not allow (a body that is not `application/json`,
an object with a key twice, the non-JSON constants NaN/Infinity). `StrictStructSchemaPlugin` makes
the schema say what the server enforces: a Struct with `forbid_unknown_fields` is published with
`additionalProperties: false`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, HTTPException
from litestar.plugins import OpenAPISchemaPlugin
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types.empty import Empty

MAX_JSON_DEPTH = 32  # our bodies nest 3 levels ({"events": [{...}]}); far below any decoder's recursion limit
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # JSON strings, whose brackets do not nest anything
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (an upper bound for text that is not JSON)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:  # the usual body: cannot be too deep
        return body.count(b"[") + body.count(b"{")
    depth = deepest = 0
    for char in _STRING.sub(b"", body):
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ClientException(detail=f"JSON body has the key {key!r} twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ClientException(detail=f"JSON body contains {name}, which is not JSON")


def decode_strict(body: bytes) -> Any:
    """Decode a request body, refusing deep nesting, duplicate keys and NaN/Infinity with 400."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise ClientException(detail=f"JSON body nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}")
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ClientException(detail=f"malformed JSON body: {str(exc).splitlines()[0]}") from None


class StrictRequest(Request):
    """Litestar's Request whose `json()` decodes with `decode_strict` and only `application/json` bodies."""

    async def json(self) -> Any:
        """The decoded body (cached like Litestar's own), or 415/400 naming what is wrong."""
        if (cached := self._connection_state.json) is not Empty:
            return cached
        media_type = (self.headers.get("content-type") or "").split(";")[0].strip().lower()
        if not _JSON_MEDIA.match(media_type):
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=f"the body must be application/json, not {media_type or 'a body without Content-Type'}",
            )
        value = decode_strict(await self.body() or b"null")
        self._connection_state.json = value
        return value


class StrictStructSchemaPlugin(OpenAPISchemaPlugin):
    """Litestar's Struct schema plus `additionalProperties: false` where the Struct forbids unknown fields."""

    def __init__(self) -> None:
        from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

        self._struct = StructSchemaPlugin()

    def is_plugin_supported_field(self, field_definition: Any) -> bool:
        """The same fields as Litestar's Struct plugin."""
        return self._struct.is_plugin_supported_field(field_definition)

    def to_openapi_schema(self, field_definition: Any, schema_creator: Any) -> Any:
        """Litestar's schema for the Struct, closed to unknown fields when the Struct is."""
        schema = self._struct.to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if getattr(info, "forbid_unknown_fields", False):
            schema.additional_properties = False
        return schema
