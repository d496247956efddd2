"""Jira field edits: ``fields`` values and ``update`` operations (labels,
components, fixVersions add/remove/set, comment add) applied to an issue,
recording each change in a :class:`~syncd.sim.jira_state.Change`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from syncd.sim.core import iso
from syncd.sim.jira_adf import ADF_ERROR, adf_to_text, is_adf, text_to_adf
from syncd.sim.jira_catalog import CUSTOM_FIELDS, ISSUE_TYPES, PRIORITIES, CommentRec, IssueRec
from syncd.sim.jira_changes import new_comment
from syncd.sim.jira_http import err
from syncd.sim.jira_state import Change, JiraState


def apply_fields(sim: JiraState, rec: IssueRec, fields: dict[str, Any], ver: str, change: Change) -> None:
    errors: dict[str, str] = {}
    for fid, value in fields.items():
        try:
            set_field(sim, rec, fid, value, ver, change)
        except ValueError as e:
            errors[fid] = str(e)
    if errors:
        raise err(400, errors=errors)


def set_field(sim: JiraState, rec: IssueRec, fid: str, value: Any, ver: str, change: Change) -> None:
    if fid in CUSTOM_FIELDS:
        return _set_custom(sim, rec, fid, value, change)
    if fid == "summary":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("You must specify a summary of the issue.")
        if "\n" in value:
            raise ValueError("The summary is invalid because it contains newline characters.")
        change.add("summary", "summary", None, rec.summary, None, value)
        rec.summary = value
    elif fid == "description":
        doc = rich_text(sim, value, ver)
        change.add("description", "description", None, adf_to_text(rec.description) or None,
                   None, adf_to_text(doc) or None)
        rec.description = doc
    elif fid == "labels":
        _set_labels(sim, rec, _labels(value), change)
    elif fid == "priority":
        pid = pick(value, PRIORITIES, lambda k: PRIORITIES[k])
        change.add("priority", "priority", rec.priority_id, PRIORITIES[rec.priority_id], pid, PRIORITIES[pid])
        rec.priority_id = pid
    elif fid == "assignee":
        set_assignee(sim, rec, None if value is None else value.get("accountId") or value.get("id"), change)
    elif fid == "components":
        ids = [_component_ref(sim, rec, v) for v in _list(value)]
        _set_refs(sim, rec, "component_ids", ids, "components", "Component",
                       lambda c: sim.components[c].name, change)
    elif fid == "fixVersions":
        ids = [_version_ref(sim, rec, v) for v in _list(value)]
        _set_refs(sim, rec, "fix_version_ids", ids, "fixVersions", "Fix Version",
                       lambda v: sim.versions[v].name, change)
    elif fid in ("issuetype", "project", "reporter"):
        if fid == "issuetype":
            rec.issuetype_id = pick(value, ISSUE_TYPES, lambda k: ISSUE_TYPES[k][0])
    else:
        raise ValueError(f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown.")


def rich_text(sim: JiraState, value: Any, ver: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if ver == "3":
        if not is_adf(value):
            raise ValueError(ADF_ERROR)
        return value
    if not isinstance(value, str):
        raise ValueError("Operation value must be a string")
    return text_to_adf(value)


def _set_labels(sim: JiraState, rec: IssueRec, labels: list[str], change: Change) -> None:
    if labels != rec.labels:
        change.add("labels", "labels", None, " ".join(rec.labels), None, " ".join(labels))
        rec.labels = labels


def set_assignee(sim: JiraState, rec: IssueRec, account: str | None, change: Change) -> None:
    if account is not None and account not in sim.users:
        raise ValueError(f"User '{account}' does not exist.")
    if account == rec.assignee:
        return
    name = lambda a: sim.users[a].display_name if a else None  # noqa: E731
    change.add("assignee", "assignee", rec.assignee, name(rec.assignee), account, name(account))
    rec.assignee = account


def _set_refs(sim: JiraState, rec: IssueRec, attr: str, ids: list[str], fid: str, label: str,
              name: Callable[[str], str], change: Change) -> None:
    old = getattr(rec, attr)
    for gone in [i for i in old if i not in ids]:
        change.add(fid, label, gone, name(gone), None, None)
    for new in [i for i in ids if i not in old]:
        change.add(fid, label, None, None, new, name(new))
    setattr(rec, attr, ids)


def _component_ref(sim: JiraState, rec: IssueRec, ref: Any) -> str:
    for cid in sim.projects[rec.project_id].component_ids:
        c = sim.components[cid]
        if isinstance(ref, dict) and (ref.get("id") == cid or ref.get("name") == c.name):
            return cid
    raise ValueError(f"Component name '{_name_of(ref)}' is not valid")


def _version_ref(sim: JiraState, rec: IssueRec, ref: Any) -> str:
    for v in sim.versions.values():
        if v.project_id == rec.project_id and isinstance(ref, dict) and \
                (str(ref.get("id")) == v.id or ref.get("name") == v.name):
            return v.id
    raise ValueError(f"Version name '{_name_of(ref)}' is not valid")


def _set_custom(sim: JiraState, rec: IssueRec, fid: str, value: Any, change: Change) -> None:
    cf, old = CUSTOM_FIELDS[fid], rec.custom.get(fid)
    new: Any = value
    if value is not None:
        if cf.kind == "text" and not isinstance(value, str):
            raise ValueError("Operation value must be a string")
        if cf.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("Operation value must be a number")
            new = float(value)
        if cf.kind == "datetime":
            try:
                new = datetime.fromisoformat(str(value)).timestamp()
            except ValueError:
                raise ValueError("Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\".")
        if cf.kind == "select":
            options = dict(cf.options)
            by_value = {v: k for k, v in cf.options}
            ref = value if isinstance(value, dict) else {}
            new = str(ref["id"]) if str(ref.get("id")) in options else by_value.get(ref.get("value"))
            if new is None:
                raise ValueError(f"Option value '{_name_of(value)}' is not valid")
    if new == old:
        return
    show = lambda v: None if v is None else (  # noqa: E731
        iso(v, jira=True) if cf.kind == "datetime" else dict(cf.options)[v] if cf.kind == "select"
        else _num(v) if cf.kind == "number" else str(v))
    change.add(fid, cf.name, None, show(old), None, show(new), fieldtype="custom")
    if new is None:
        rec.custom.pop(fid, None)
    else:
        rec.custom[fid] = new


def apply_update_ops(sim: JiraState, rec: IssueRec, update: dict[str, Any], ver: str, change: Change,
                     actor: str) -> list[CommentRec]:
    """``update`` operations: labels/components/fixVersions add|remove|set, comment add."""
    added: list[CommentRec] = []
    errors: dict[str, str] = {}
    for fid, ops in update.items():
        try:
            if fid == "comment":
                for op in _list(ops):
                    body = rich_text(sim, (op.get("add") or {}).get("body"), ver)
                    if body is None:
                        raise ValueError("Comment body can not be empty!")
                    added.append(new_comment(sim, rec, actor, body, {}))
                continue
            current = {"labels": list(rec.labels),
                       "components": [{"id": c} for c in rec.component_ids],
                       "fixVersions": [{"id": v} for v in rec.fix_version_ids]}.get(fid)
            if current is None:
                set_field(sim, rec, fid, _last_set(ops), ver, change)
                continue
            for op in _list(ops):
                if not isinstance(op, dict) or len(op) != 1:
                    raise ValueError("Operation must be one of add, remove, set")
                verb, arg = next(iter(op.items()))
                if verb == "set":
                    current = list(arg)
                elif verb == "add":
                    current = current + [arg] if arg not in current else current
                elif verb == "remove":
                    current = [x for x in current if not _same_ref(x, arg, fid, sim)]
                else:
                    raise ValueError(f"Operation '{verb}' is not supported")
            set_field(sim, rec, fid, current, ver, change)
        except ValueError as e:
            errors[fid] = str(e)
    if errors:
        raise err(400, errors=errors)
    return added


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("Operation value must be an array")
    return value


def _labels(value: Any) -> list[str]:
    labels = _list(value)
    for label in labels:
        if not isinstance(label, str) or not label or " " in label:
            raise ValueError("The label '%s' contains spaces which is invalid." % label)
    return list(dict.fromkeys(labels))


def pick(ref: Any, table: dict[str, Any], name: Callable[[str], str]) -> str:
    """An id from ``{"id"}`` or ``{"name"}``."""
    if isinstance(ref, dict):
        if str(ref.get("id")) in table:
            return str(ref["id"])
        for key in table:
            if ref.get("name") is not None and name(key).lower() == str(ref["name"]).lower():
                return key
    raise ValueError(f"Specify a valid value for {_name_of(ref)}")


def _name_of(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("name") or ref.get("value") or ref.get("id"))
    return str(ref)


def _last_set(ops: Any) -> Any:
    for op in reversed(_list(ops)):
        if isinstance(op, dict) and "set" in op:
            return op["set"]
    raise ValueError("Operation must be 'set' for this field")


def _same_ref(current: Any, arg: Any, fid: str, sim: JiraState) -> bool:
    if fid == "labels":
        return current == arg
    table = sim.components if fid == "components" else sim.versions
    cid = current.get("id")
    if isinstance(arg, dict):
        return str(arg.get("id")) == cid or (arg.get("name") is not None and cid in table
                                             and table[cid].name == arg.get("name"))
    return False
