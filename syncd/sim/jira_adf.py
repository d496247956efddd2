"""Atlassian Document Format (ADF) as the Jira simulator needs it.

The simulator stores rich text (descriptions, comment bodies) as ADF, the form
v3 speaks, and renders plain text for v2 and for webhooks. The conversion is
line-based: one paragraph per line, so plain text survives a round trip exactly.
Marks (bold, links, ...) are kept in storage but dropped in the plain-text view.
"""

from __future__ import annotations

from typing import Any

ADF_ERROR = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


def is_adf(value: Any) -> bool:
    """A minimally valid ADF document: what real Jira checks before anything else."""
    return (isinstance(value, dict) and value.get("type") == "doc"
            and value.get("version") == 1 and isinstance(value.get("content"), list))


def text_to_adf(text: str) -> dict[str, Any]:
    paragraphs = []
    for line in text.split("\n"):
        content = [{"type": "text", "text": line}] if line else []
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_to_text(doc: dict[str, Any] | None) -> str:
    if not doc:
        return ""
    return "\n".join(_block_text(block) for block in doc.get("content", []))


def _block_text(node: dict[str, Any]) -> str:
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    children = node.get("content") or []
    joiner = "\n" if node.get("type") in ("bulletList", "orderedList", "blockquote", "listItem") else ""
    return joiner.join(_block_text(child) for child in children)
