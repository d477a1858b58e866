"""A tool name's verb is found wherever it stands, and an order to create gets no destructive tool
(review console7 #4).

Many servers prefix their tools with the product (`slack_post_message`, `stripe_delete_refund`); the
priors read only a name's first word, so those tools got no intent, kind-of-write or one-record help,
and "refund a stripe charge" ranked `delete_refund` first. The catalog below is the review's: the same
300 tools (10 products × 6 records × create/get/list/update/delete) named `stripe_create_refund` in one
namespace, or `create_refund` in namespace `stripe`; ranked by the index directly (keyword, and hybrid
with the deterministic word-hash embedder), with the servers' annotations and without them.
"""

from __future__ import annotations

import mcp_types as types
import pytest

from hub.search.documents import ToolDoc, tool_doc
from hub.search.index import ToolIndex
from hub.search.intent import tool_action, tool_intent
from hub.search.specific import fetches_one
from tests.fixtures.word_embedder import WordEmbedder

PRODUCTS = {
    "github": ("GitHub", ["repository", "pull_request", "issue", "branch", "release", "workflow_run"]),
    "slack": ("Slack", ["channel", "message", "reaction", "user_group", "reminder", "bookmark"]),
    "jira": ("Jira", ["ticket", "sprint", "epic", "board", "comment", "worklog"]),
    "gmail": ("Gmail", ["email", "draft", "label", "thread", "filter", "attachment"]),
    "drive": ("Google Drive", ["file", "folder", "permission", "revision", "shortcut", "comment"]),
    "stripe": ("Stripe", ["customer", "charge", "refund", "subscription", "payout", "coupon"]),
    "salesforce": ("Salesforce", ["lead", "opportunity", "account", "contact", "campaign", "case"]),
    "k8s": ("Kubernetes", ["pod", "deployment", "service", "namespace", "secret", "cronjob"]),
    "s3": ("Amazon S3", ["bucket", "object", "lifecycle_rule", "bucket_policy", "multipart_upload", "tag"]),
    "postgres": ("PostgreSQL", ["table", "index", "role", "schema", "query_plan", "backup"]),
}
VERBS = {"create": "Create a new", "get": "Get one", "list": "List every", "update": "Update an existing",
         "delete": "Delete a"}
REQUESTS = [
    ("create a new jira ticket", "jira", "create_ticket"), ("delete a kubernetes pod", "k8s", "delete_pod"),
    ("list all s3 buckets", "s3", "list_buckets"), ("refund a stripe charge", "stripe", "create_refund"),
    ("post a message in a slack channel", "slack", "create_message"),
    ("show me github pull request 42", "github", "get_pull_request"),
    ("update a salesforce lead", "salesforce", "update_lead"),
    ("list my gmail drafts", "gmail", "list_drafts"), ("remove a postgres index", "postgres", "delete_index"),
    ("cancel a stripe subscription", "stripe", "delete_subscription"),
    ("which kubernetes deployments exist", "k8s", "list_deployments"),
    ("create a postgres backup", "postgres", "create_backup"),
    ("get the github release", "github", "get_release"), ("new coupon in stripe", "stripe", "create_coupon"),
    ("upload a file to google drive", "drive", "create_file"), ("log work on a jira ticket", "jira", "create_worklog"),
    ("rotate a kubernetes secret", "k8s", "update_secret"), ("delete an S3 object", "s3", "delete_object"),
    ("list salesforce opportunities", "salesforce", "list_opportunitys"),
    ("add a reaction to a slack message", "slack", "create_reaction"),
]
"""The review's 20 requests and the tool each wants."""
DECIDED_BY_THE_VERB = ["which kubernetes deployments exist", "upload a file to google drive",
                       "rotate a kubernetes secret", "delete a kubernetes pod", "cancel a stripe subscription",
                       "update a salesforce lead"]
"""Requests whose siblings share every word but the verb: only the priors pick the right one."""
CONFIGS = [(mode, annotated) for mode in ("keyword", "hybrid") for annotated in (True, False)]


def catalog(prefixed: bool, annotated: bool) -> list[ToolDoc]:
    docs = []
    for product, (label, records) in PRODUCTS.items():
        for record in records:
            for verb, phrase in VERBS.items():
                plural = "s" if verb == "list" else ""
                original = (f"{product}_" if prefixed else "") + f"{verb}_{record}{plural}"
                words = record.replace("_", " ")
                hints = types.ToolAnnotations(read_only_hint=verb in ("get", "list"),
                                              destructive_hint=verb == "delete") if annotated else None
                props = ({"name": {"type": "string"}} if verb in ("create", "list")
                         else {f"{record}_id": {"type": "string", "description": f"The {label} {words} id"}})
                namespace = "cat" if prefixed else product
                tool = types.Tool(name=f"{namespace}__{original}",
                                  description=f"{phrase} {label} {words}{plural} in {label}.",
                                  input_schema={"type": "object", "properties": props}, annotations=hints)
                docs.append(tool_doc(tool, original, namespace))
    return docs


def wanted(prefixed: bool, product: str, tool: str) -> str:
    return f"cat__{product}_{tool}" if prefixed else f"{product}__{tool}"


def index_of(prefixed: bool, mode: str, annotated: bool) -> ToolIndex:
    index = ToolIndex(WordEmbedder() if mode == "hybrid" else None)
    index.update(catalog(prefixed, annotated))
    return index


def test_the_verb_of_a_name_is_found_after_a_prefix_or_a_noun() -> None:
    assert tool_action("slack_post_message") == "create" and tool_action("stripe_delete_refund") == "delete"
    assert tool_action("googleDriveCreateFile") == "create" and tool_action("file_delete") == "delete"
    assert tool_action("jira_update_issue") == "update" and tool_action("create_event") == "create"
    assert tool_action("blog_post") is None and tool_action("share_file") is None, "a last word that is a noun"
    bare = types.Tool(name="x", input_schema={"type": "object"})
    assert tool_intent(bare, "aws_s3_list_buckets") == "read" and tool_intent(bare, "brave_web_search") == "read"
    assert tool_intent(bare, "audit_log_search") == "read", "a noun-like first word yields to a later verb"
    assert tool_intent(bare, "mark_as_read") == "write" and tool_intent(bare, "slack_post_message") == "write"
    assert fetches_one("k8s_get_deployment", {"properties": {"deployment_id": {}}})
    assert not fetches_one("k8s_list_deployments", {"properties": {"deployment_id": {}}})
    assert not fetches_one("k8s_get", {"properties": {"id": {}}}), "no record named after the verb"


def test_destructive_is_the_delete_verb_or_the_servers_hint() -> None:
    def doc(name: str, **hints: bool) -> ToolDoc:
        tool = types.Tool(name=name, input_schema={"type": "object"}, annotations=types.ToolAnnotations(**hints))
        return tool_doc(tool, name, "ns")

    assert doc("stripe_delete_refund").destructive and doc("overwrite_file", destructive_hint=True).destructive
    assert not doc("stripe_create_refund").destructive and not doc("update_file", destructive_hint=False).destructive
    assert not doc("list_refunds", read_only_hint=True, destructive_hint=True).destructive, "a read-only tool reads"


@pytest.mark.parametrize("mode, annotated", CONFIGS)
def test_prefixed_names_rank_as_well_as_plain_ones(mode: str, annotated: bool) -> None:
    hits: dict[bool, int] = {}
    for prefixed in (True, False):
        index = index_of(prefixed, mode, annotated)
        hits[prefixed] = sum(index.search(q, 1, mode=mode)[0].name == wanted(prefixed, p, t) for q, p, t in REQUESTS)
    assert hits[True] >= hits[False] and hits[True] >= 16, f"hit@1 of 20: prefixed {hits[True]}, plain {hits[False]}"
    index = index_of(True, mode, annotated)
    for query, product, tool in REQUESTS:
        if query in DECIDED_BY_THE_VERB:
            assert index.search(query, 1, mode=mode)[0].name == wanted(True, product, tool), query


@pytest.mark.parametrize("mode, annotated", CONFIGS)
def test_an_order_to_create_gets_no_destructive_tool(mode: str, annotated: bool) -> None:
    for prefixed in (True, False):
        index = index_of(prefixed, mode, annotated)
        for query in ("refund a stripe charge", "add a reaction to a slack message",
                      "post a message in a slack channel", "upload a file to google drive"):
            top = index.search(query, 1, mode=mode)[0]
            kind = (top.doc.action, top.doc.destructive) if top.doc is not None else None
            assert kind == ("create", False), (query, top.name)
        top = index.search("delete a stripe refund", 1, mode=mode)[0]
        assert top.name == wanted(prefixed, "stripe", "delete_refund"), "an order to delete still gets the delete tool"
