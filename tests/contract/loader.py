"""Loading the vendors' OpenAPI documents: read once per process, corrected
in memory (:mod:`contract.corrections`), and turned into
openapi-core validators with a fast path lookup.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
import yaml
from jsonschema_path import SchemaPath
from openapi_core.templating.datatypes import TemplateResult
from openapi_core.templating.paths.datatypes import PathOperationServer
from openapi_core.templating.paths.finders import BasePathFinder
from openapi_core.validation.request.validators import V30RequestValidator
from openapi_core.validation.response.validators import V30ResponseValidator
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30Validator,
    OAS30WriteValidator,
)

from .corrections import ERROR_SHAPES, ContractSetupError, _resolve, corrections_for

# Logged under the checker's public module name, as before the split.
log = structlog.get_logger("syncd.sim.contract")

SWITCH_ENV = "SYNCD_CONTRACT"
SPECS_ENV = "SYNCD_VENDOR_SPECS"
# The repository is checked out with ``shared/`` beside it (as in CI).
DEFAULT_SPECS_DIR = Path(__file__).resolve().parents[3] / "shared" / "vendor-specs"


def specs_dir() -> Path:
    return Path(os.environ.get(SPECS_ENV) or DEFAULT_SPECS_DIR)


@dataclass(frozen=True)
class VendorDoc:
    vendor: str
    filename: str
    # Requests are rewritten to this host: openapi-core only matches a server
    # URL the document lists (Zendesk's is the template https://{subdomain}.{domain}.com).
    server: str
    strip_json_suffix: bool = False   # zenpy appends ``.json``; the document does not


VENDORS: dict[str, VendorDoc] = {
    "jira": VendorDoc("jira", "jira-cloud-platform-v3.json", "https://your-domain.atlassian.net"),
    "zendesk": VendorDoc("zendesk", "zendesk-support.yaml", "https://example.zendesk.com",
                         strip_json_suffix=True),
    "intercom": VendorDoc("intercom", "intercom-2.14.yaml", "https://api.intercom.io"),
}


# ---------------------------------------------------------------------------
# Loading (once per process, per vendor, on first use)
# ---------------------------------------------------------------------------

class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


# Zendesk's examples use the bare value ``=``, which YAML reads as the special
# "value" tag and SafeLoader refuses: read it as the plain string it is.
_YamlLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _read_document(vendor: str) -> dict:
    path = specs_dir() / VENDORS[vendor].filename
    if not path.is_file():
        raise ContractSetupError(f"vendor document not found: {path} (set {SPECS_ENV} or {SWITCH_ENV}=off)")
    with path.open("rb") as fh:
        if path.suffix == ".json":
            return json.load(fh)
        return yaml.load(fh, Loader=_YamlLoader)


def _response_of(doc: dict, responses: dict, status: int) -> dict | None:
    """The documented response for ``status`` (exact, ``4XX`` range, default), refs resolved."""
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return _resolve(doc, responses[key])
    return None


def _json_schema_of(response: dict) -> dict | None:
    for media, spec in (response.get("content") or {}).items():
        if "json" in media and isinstance(spec, dict) and "schema" in spec:
            return spec["schema"]
    return None


@dataclass(frozen=True)
class _Match:
    template: str
    params: dict[str, str]
    operation_id: str
    operation: dict


class _PathIndex:
    """Path templates of one document as regexes, most concrete first."""

    def __init__(self, paths: dict[str, dict]):
        entries = []
        for template, item in paths.items():
            names = re.findall(r"\{([^}]+)\}", template)
            regex = "".join(
                f"(?P<p{names.index(part[1:-1])}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template) if part
            )
            entries.append((len(names), -len(template), template, re.compile(regex), names, item))
        entries.sort(key=lambda e: (e[0], e[1]))
        self._entries = entries
        self.match = lru_cache(maxsize=8192)(self._match)

    def _match(self, method: str, path: str) -> _Match | None | str:
        """A match; or the string "method" when the path exists without that method."""
        path_known = False
        for _, _, template, regex, names, item in self._entries:
            m = regex.fullmatch(path)
            if not m:
                continue
            operation = item.get(method.lower())
            if operation is None:
                path_known = True
                continue
            params = {name: m.group(f"p{i}") for i, name in enumerate(names)}
            return _Match(template, params, operation.get("operationId", template), operation)
        return "method" if path_known else None


class _DirectPathFinder(BasePathFinder):
    """openapi-core's finder walks every path of the document on every call
    (~3 ms for Jira's 417 paths); we already know the template, so look it up."""

    def __init__(self, spec: SchemaPath, base_url: str | None = None):
        super().__init__(spec, base_url)
        self._paths = dict((spec / "paths").str_items())
        self._server = next(iter(spec / "servers"))
        self._cache: dict[tuple[str, str], PathOperationServer] = {}

    def find(self, method: str, name: str) -> PathOperationServer:
        key = (method, name)
        found = self._cache.get(key)
        if found is None:
            server_url = (self._server / "url").read_str()
            template = "/" + name.split("/", 3)[3]   # name = scheme://host + template
            path = self._paths[template]
            found = PathOperationServer(path, path / method, self._server,
                                        TemplateResult(template, {}), TemplateResult(server_url, {}))
            self._cache[key] = found
        return found


class _OnceFormatsFactory(SchemaValidatorsFactory):
    """openapi-core deep-copies the format checker for every schema it checks
    (a quarter of the time spent); ours never changes after load: build it once."""

    def __init__(self, schema_validator_cls: type) -> None:
        super().__init__(schema_validator_cls)
        self._checkers: dict[tuple[int, int], Any] = {}

    def get_format_checker(self, format_validators: Any = None, extra_format_validators: Any = None) -> Any:
        key = (id(format_validators), id(extra_format_validators))
        if key not in self._checkers:
            self._checkers[key] = super().get_format_checker(format_validators, extra_format_validators)
        return self._checkers[key]


@dataclass
class _Loaded:
    doc: dict
    requests: V30RequestValidator
    responses: V30ResponseValidator
    index: _PathIndex
    aliases: list[tuple[str, str]]
    error_validator: OAS30Validator
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: dict[str, _Loaded] = {}
_load_lock = threading.Lock()


def load(vendor: str) -> _Loaded:
    """The corrected document and its validators, built once per process."""
    with _load_lock:
        if vendor not in _loaded:
            started = time.monotonic()
            _loaded[vendor] = _build(vendor)
            log.info("contract_document_loaded", vendor=vendor,
                     seconds=round(time.monotonic() - started, 3))
        return _loaded[vendor]


def _build(vendor: str) -> _Loaded:
    doc = _read_document(vendor)
    formats: dict[str, Callable[[Any], bool]] = {}
    aliases = []
    for c in corrections_for(vendor):
        if c.patch is not None:
            c.patch(doc)
        formats.update(dict(c.formats))
        if c.path_alias is not None:
            aliases.append(c.path_alias)
    # The documents do not pass strict validation of the document itself (an
    # enum default of "" and the like), so the spec check is skipped.
    spec = SchemaPath.from_dict(doc)
    common: dict[str, Any] = {"path_finder_cls": _DirectPathFinder, "extra_format_validators": formats or None}
    requests = V30RequestValidator(spec, schema_validators_factory=_OnceFormatsFactory(OAS30WriteValidator), **common)
    responses = V30ResponseValidator(spec, schema_validators_factory=_OnceFormatsFactory(OAS30ReadValidator), **common)
    error_schema = copy.deepcopy(ERROR_SHAPES[vendor](doc))
    return _Loaded(doc, requests, responses, _PathIndex(doc["paths"]), aliases, OAS30Validator(error_schema))
