"""Issue 12 finding 2: an item has exactly one spelling (CLI arguments, the store,
webhooks and vendor answers all go through ItemRef)."""

from __future__ import annotations

import pytest

from syncd.domain import ItemRef, vendor_refs


@pytest.mark.parametrize("text", ["intercom:conversation:200000000026?", "intercom:conversation:200000000026#x",
                                  "intercom:conversation:./200000000026", "intercom:conversation:1/../../admins",
                                  "zendesk:0123", "zendesk:0", "zendesk:-1", "jira:1e3", "jira:" + "9" * 20,
                                  "jira:9223372036854775808", "zendesk:", "zendesk:１２", "intercom:ticket:12 3"])
def test_cli_item_argument_in_another_spelling_is_refused_with_a_reason(text):
    with pytest.raises(ValueError, match="bad item id"):
        ItemRef.parse(text)


@pytest.mark.parametrize("text, ref", [("zendesk:35436", ItemRef("zendesk", "35436")),
                                       (" intercom:conversation:200000000026 ", ItemRef("intercom:conversation",
                                                                                         "200000000026")),
                                       ("jira:9223372036854775807", ItemRef("jira", "9223372036854775807"))])
def test_the_one_spelling_parses(text, ref):
    assert ItemRef.parse(text) == ref


def test_vendor_answers_with_bad_ids_are_dropped_not_fatal():
    refs, refused = vendor_refs("zendesk", [28, "29", 28, "1/../x", None, True, 0])
    assert refs == (ItemRef("zendesk", "28"), ItemRef("zendesk", "29"))
    assert refused == ["1/../x", "None", "True", "0"]
