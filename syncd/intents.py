"""Comments and notes behind recorded intents: record, own, take over, recover.

Posting a comment is not idempotent on the vendor side, so each one is recorded
under a unique key *before* the call and finished with the vendor's id *after*
(docs/architecture.md, "Intents and crash recovery"). A caller makes the write
only while it owns the intent: it recorded it just now, or took over a pending
one whose write was looked for on the vendor side and not found, after the
settle window.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable, Mapping as TMapping, Sequence

import structlog

from .connectors.base import DeskConnector, TrackerConnector
from .domain import Attachment, Comment, DeskItem, Link, Side
from .errors import Ambiguous, VendorError
from .failpoints import failpoint
from .fencing import current_claim, still_held
from .mapping import Mapping
from .metrics import METRICS
from .outcome import IntentSettling, Outcome, Write, excerpt
from .reconcile import CommentWrite, MirrorState, NoteWrite
from .store_ports import Claim, EngineStore, Intent, LinkState, StoreError
from .unsent import UnsentIntents, watching_send

log = structlog.get_logger("syncd.engine")   # one logger for all of the engine's parts
# Desks carry no marker: recovery looks for a comment with the intent's exact body
# from this long before the intent was recorded (vendors stamp whole seconds).
DESK_SEARCH_MARGIN = 120.0


class IntentWrites:
    """The comments and notes a reconcile posts, each at most once."""

    def __init__(self, store: EngineStore, desks: TMapping[str, DeskConnector], tracker: TrackerConnector,
                 mappings: TMapping[str, Mapping], settle_seconds: float, unsent: UnsentIntents):
        self.store = store
        self.desks = desks
        self.tracker = tracker
        self.mappings = mappings
        # How long a pending intent may still be in flight at the vendor (the runtime sets it).
        self.settle_seconds = settle_seconds
        self.unsent = unsent   # writes this process never sent while the database was down

    # -- record and own ----------------------------------------------------
    def own(self, key: str, kind: str, link_id: int | None, payload: dict) -> bool:
        """Record the intent under the current claim; true only when *this* call recorded it.
        Another worker or process (``syncd link`` beside the daemon) that planned the same write
        owns it while it is pending, and recovery looks after it if that one died."""
        begun = self.store.begin_intent(key, kind, link_id, payload, claim=current_claim())
        if not begun.owned and begun.intent.state == "pending":
            log.info("intent_owned_elsewhere", key=key)
        return begun.owned

    def take(self, intent: Intent, system: str, what: str) -> None:
        """Take a pending intent over (its write was looked for and not found, and the settle
        window passed); of two takers one wins, the other waits."""
        if not self.store.take_intent(intent, current_claim()):
            raise IntentSettling(system, what, f"{intent.key} taken over by another worker")

    def settling(self, intent: Intent) -> bool:
        """Whether a write of ``intent`` may still land (a stalled call, a crash mid-call):
        within the settle window, unless this process knows it never sent it."""
        return age(intent) < self.settle_seconds and not self.unsent.never_sent(intent)

    def write(self, key: str, write: Callable[[], str]) -> str:
        """Make the write of pending intent ``key``. Refused, or stopped before its request
        left: nothing to look for later, so the intent is dropped and the next try writes at
        once. Ambiguous (no answer in time): the intent stays for recovery to look first."""
        return self._write_all((key,), write)

    def _write_all(self, keys: Sequence[str], write: Callable[[], str]) -> str:
        """:meth:`write` for one request that carries the writes of several pending intents:
        refused or never sent, every one of them is dropped; ambiguous, every one stays."""
        with watching_send() as send:
            try:
                return write()
            except Exception as e:
                refused = isinstance(e, VendorError) and not isinstance(e, Ambiguous)
                if refused or not send.left:
                    for key in keys:
                        self.drop_unsent(key, current_claim())
                raise

    def drop_unsent(self, key: str, claim: Claim | None) -> None:
        """Forget the pending intent of a write that never happened; when the database is what
        failed, remember it in this process so recovery here need not wait (syncd.unsent)."""
        try:
            self.store.drop_intent(key, claim)
        except StoreError:
            self.unsent.remember(key, claim)

    # -- comments and notes on a link -------------------------------------
    def post_comment(self, link: Link, cw: CommentWrite, outcome: Outcome) -> tuple[Comment, ...]:
        """Returns the comment as posted (none when another attempt owns or made it)."""
        key = f"comment:{link.id}:{cw.side.value}:{cw.source_id}"
        if self.store.get_intent(key) is not None:
            return ()
        body, files = self._attachments(link, cw)
        payload = {"side": cw.side.value, "source_id": cw.source_id, "body": body, "public": cw.public}
        if not self.own(key, "comment", link.id, payload):
            return ()
        target = self._write_comment(link, key, cw.side, body, cw.public, files)
        failpoint("after_comment_post")
        if not still_held():
            target = (self._repair_duplicate_comments(link, key, target) if cw.side is Side.TRACKER
                      else self._repair_duplicate_desk_comments(link, (key,), body, target))
        self.store.finish_intent(key, target)
        outcome.writes.append(Write(link.issue_key if cw.side is Side.TRACKER else str(link.desk),
                                    "comment", excerpt(cw.body), source=cw.source_id, mirrored=target))
        METRICS.inc("comments_mirrored")
        log.info("comment_mirrored", link=link.id, direction=f"to_{cw.side.value}", source=cw.source_id,
                 target=target, public=cw.public)
        return (own_comment(target, body, cw.public),)

    def post_note(self, link: Link, note: NoteWrite, outcome: Outcome) -> tuple[Comment, ...]:
        return self.post_notes(link, (note,), outcome)

    def post_notes(self, link: Link, notes: Sequence[NoteWrite], outcome: Outcome,
                   write: Callable[[str, bool], str] | None = None) -> tuple[Comment, ...]:
        """Notes of one visibility as ONE desk comment, their bodies joined in plan order
        (Zendesk takes one comment per ticket update: a transition's status note and its
        fan-out note are one write, not two). Each note keeps its own intent, all carrying
        the joined body, so recovery after a crash or an ambiguous answer finds the one
        comment by any of them and writes none twice. ``write(body, public)`` makes the
        request and returns the comment's id: by default a plain comment; the caller may
        pass one that writes fields in the same request. Returns the comment as posted
        (none when the notes were already recorded: another attempt owns or made them)."""
        fresh = [n for n in notes if self.store.get_intent(n.key) is None]
        if not fresh:
            return ()
        public = fresh[0].public
        if any(n.public != public for n in fresh):
            raise ValueError("notes posted as one comment must share their visibility")
        body = joined(fresh)
        payload = {"side": Side.DESK.value, "body": body, "public": public}
        owned = [n.key for n in fresh if self.own(n.key, "note", link.id, payload)]
        if len(owned) < len(fresh):
            # Another worker recorded one of them meanwhile: it writes what it owns, and
            # what we recorded goes back (its joined body names a note we do not own).
            for key in owned:
                self.drop_unsent(key, current_claim())
            raise IntentSettling(link.desk.system, "note", f"{fresh[0].key} recorded by another worker; waiting")
        desk = self.desks[link.desk.system]
        target = self._write_all(owned, lambda: (write or (lambda b, p: desk.add_comment(link.desk, b, p)))(
            body, public))
        failpoint("after_note_post")
        if not still_held():
            # The claim was taken while the comment was on its way: the taker may have
            # written the same joined comment (all of these notes' intents name it).
            target = self._repair_duplicate_desk_comments(link, [n.key for n in fresh], body, target)
        for note in fresh:
            self.store.finish_intent(note.key, target)
            outcome.writes.append(Write(str(link.desk), "note", excerpt(note.body), source=note.key, mirrored=target))
            log.info("note_posted", link=link.id, key=note.key, public=note.public, joined=len(fresh))
        return (own_comment(target, body, public),)

    def post_note_unlinked(self, item: DeskItem, body: str, key: str, outcome: Outcome) -> None:
        """A note on a desk item that has no link (yet): e.g. a typed key that names no issue."""
        begun = self.store.begin_intent(key, "note", None, {"side": "desk", "body": body, "public": False},
                                        claim=current_claim())
        intent = begun.intent
        if intent.state == "done":
            return
        desk = self.desks[item.ref.system]
        if not begun.owned:
            # An earlier attempt recorded it and died or timed out: look before writing again.
            found = desk.find_comment(item.ref, body, desk_search_since(intent))
            if found is not None:
                self.store.finish_intent(key, found)
                recovered(key, str(item.ref), "found", found)
                return
            if self.settling(intent):
                raise IntentSettling(item.ref.system, "note", f"{key} not visible yet; waiting before writing again")
            self.take(intent, item.ref.system, "note")
            recovered(key, str(item.ref), "rewritten")
        target = self.write(key, lambda: desk.add_comment(item.ref, body, False))
        self.store.finish_intent(key, target)
        outcome.writes.append(Write(str(item.ref), "note", excerpt(body), source=key, mirrored=target))

    # -- recovery ----------------------------------------------------------
    def recover(self, link: Link, outcome: Outcome, state: LinkState) -> None:
        """A pending intent means an earlier attempt died between recording and
        finishing: look for the write on the vendor side before writing again."""
        for intent in state.intents:
            if intent.link_id == link.id and intent.state == "pending" and intent.kind in ("comment", "note"):
                self._recover_one(link, intent, outcome)

    def _recover_one(self, link: Link, intent: Intent, outcome: Outcome) -> None:
        p = intent.payload or {}
        side = Side(p["side"])
        found = self._find_written(link, intent, side)
        where = str(link.desk) if side is Side.DESK else link.issue_key
        system = link.desk.system if side is Side.DESK else "jira"
        if found is None and self.settling(intent):
            # It may still land (a stalled call, a crash mid-call): look again later.
            raise IntentSettling(system, intent.kind, f"{intent.key} not visible yet; waiting before writing again")
        if found is None:
            # Written again only by the claim that takes the intent over (one of two takers wins).
            self.take(intent, system, intent.kind)
            found = self._write_comment(link, intent.key, side, p["body"], bool(p.get("public")), ())
            outcome.writes.append(Write(where, intent.kind, excerpt(p["body"]),
                                        source=p.get("source_id", intent.key), mirrored=found))
            log.info("intent_replayed", link=link.id, key=intent.key)
            recovered(intent.key, where, "rewritten", found)
        else:
            recovered(intent.key, where, "found", found)
        self.store.finish_intent(intent.key, found)

    def _find_written(self, link: Link, intent: Intent, side: Side) -> str | None:
        """The vendor's id of the comment ``intent`` wrote, if it got there: by the marker on
        Jira, by author and exact body on a desk."""
        if side is Side.TRACKER:
            return self.tracker.find_comment(link.issue_id, intent.key)
        body = (intent.payload or {})["body"]
        return self.desks[link.desk.system].find_comment(link.desk, body, desk_search_since(intent))

    # -- the writes --------------------------------------------------------
    def _write_comment(self, link: Link, key: str, side: Side, body: str, public: bool,
                       attachments: Sequence[Attachment]) -> str:
        if side is Side.TRACKER:
            return self.write(key, lambda: self.tracker.add_comment(
                link.issue_id, body, source=key, attachments=attachments))
        return self.write(key, lambda: self.desks[link.desk.system].add_comment(
            link.desk, body, public, attachments))

    def _repair_duplicate_comments(self, link: Link, key: str, made: str) -> str:
        """The comment was posted under a claim taken meanwhile (this process was frozen between
        its check and its request): the new holder may have posted it too. Keep the oldest
        comment carrying the intent's marker, delete the others. Returns the kept one."""
        found = self.tracker.find_comments(link.issue_id, key)
        if len(found) < 2:
            return made
        keep = found[0]
        for comment_id in found[1:]:
            deleted = self.tracker.delete_comment(link.issue_id, comment_id)
            METRICS.inc("duplicates_repaired")
            log.warning("duplicate_repaired", what="comment", where=link.issue_key, key=key, removed=comment_id,
                        kept=keep, deleted=deleted)
            self.store.audit("duplicate_repaired", link.id, what="comment", issue=link.issue_key, key=key,
                             removed=comment_id, kept=keep)
        return keep

    def _repair_duplicate_desk_comments(self, link: Link, keys: Sequence[str], body: str, made: str) -> str:
        """As :meth:`_repair_duplicate_comments`, on the desk: a desk comment carries no marker,
        so the copies are syncd's comments with the intent's exact body since it was recorded,
        less any comment another intent of the link is known to have written (two Jira comments
        can say the same). The oldest is kept; the desk cannot delete the others, so each is
        retracted as far as it allows (Zendesk: made private, its text redacted; Intercom:
        nothing, the copy is only reported). ``keys``: the intents this one comment
        carries (several notes joined in one write). Returns the kept one."""
        key = keys[0]
        intent = self.store.get_intent(key)
        since = desk_search_since(intent) if intent is not None else datetime.fromtimestamp(
            time.time() - self.settle_seconds - DESK_SEARCH_MARGIN, timezone.utc)
        desk = self.desks[link.desk.system]
        theirs = {i.result for i in self.store.link_state(link.id).intents if i.key not in keys and i.result}
        found = [c for c in desk.find_comments(link.desk, body, since) if c not in theirs]
        if len(found) < 2:
            return made
        keep = found[0]
        for comment_id in found[1:]:
            try:
                retracted = desk.retract_comment(link.desk, comment_id)
            except VendorError as e:   # the write itself stands: finish its intent, report the copy
                log.warning("duplicate_retract_failed", where=str(link.desk), removed=comment_id, error=str(e))
                retracted = False
            METRICS.inc("duplicates_repaired" if retracted else "duplicates_found")
            log.warning("duplicate_repaired" if retracted else "duplicate_found", what="desk_comment",
                        where=str(link.desk), key=key, removed=comment_id, kept=keep, retracted=retracted)
            self.store.audit("duplicate_repaired" if retracted else "duplicate_found", link.id, what="desk_comment",
                             desk=str(link.desk), key=key, removed=comment_id, kept=keep)
        return keep

    def _attachments(self, link: Link, cw: CommentWrite) -> tuple[str, tuple[Attachment, ...]]:
        """Per the mapping: files within the size limit are downloaded from the
        source side and uploaded; the others become a line with their link (and
        why they were not copied). Done before the intent is recorded, so the
        recorded body is the one written (recovery matches on it)."""
        rules = self.mappings[link.desk.system].attachments
        if not cw.attachments or not rules.enabled:
            return cw.body, ()
        source: DeskConnector | TrackerConnector = (
            self.desks[link.desk.system] if cw.side is Side.TRACKER else self.tracker)
        lines: list[str] = []
        files: list[Attachment] = []
        for a in cw.attachments:
            if rules.mode == "upload" and a.size <= rules.max_bytes:
                files.append(replace(a, data=source.download(a)))
                continue
            why = "" if rules.mode == "link" else f" (not copied: larger than {rules.max_bytes:,} bytes)"
            lines.append(f"Attachment {a.name}, {a.size:,} bytes: {a.url}{why}")
        body = cw.body + ("\n\n" + "\n".join(lines) if lines else "")
        return body, tuple(files)


def joined(notes: Sequence[NoteWrite]) -> str:
    """The body of one desk comment carrying several notes: each its own paragraph."""
    return "\n\n".join(n.body for n in notes)


def recovered(key: str, where: str, how: str, target: str | None = None) -> None:
    log.info("intent_recovered", key=key, where=where, how=how, **({"target": target} if target else {}))


def mirror_state(state: LinkState) -> MirrorState:
    """The comments already mirrored (or being mirrored) of the link, by side."""
    to_tracker: set[str] = set()
    to_desk: set[str] = set()
    for intent in state.intents:
        if intent.kind != "comment" or intent.link_id is None:
            continue
        payload = intent.payload or {}
        side, source = payload["side"], payload["source_id"]
        (to_tracker if side == Side.TRACKER.value else to_desk).add(source)
    return MirrorState(frozenset(to_tracker), frozenset(to_desk))


def own_comment(target: str, body: str, public: bool) -> Comment:
    """A comment syncd just posted, as a fresh read would show it (enough for the plan)."""
    return Comment(id=target, author="syncd", body=body, public=public,
                   created_at=datetime.now(timezone.utc), by_integration=True)


def age(intent: Intent) -> float:
    """Seconds since the intent was recorded (or last taken over)."""
    created = intent.created_at if intent.created_at.tzinfo else intent.created_at.replace(tzinfo=timezone.utc)
    return time.time() - created.timestamp()


def desk_search_since(intent: Intent) -> datetime:
    """Where recovery starts looking for a desk comment an intent may have written: desks
    carry no marker, so by body, from a little before the intent (vendors stamp seconds)."""
    since = intent.created_at.replace(tzinfo=intent.created_at.tzinfo or timezone.utc)
    return datetime.fromtimestamp(since.timestamp() - DESK_SEARCH_MARGIN, timezone.utc)
