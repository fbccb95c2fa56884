"""Checks of features/meeting.feature (MT-01, 02, 06, 09, 10, 11, 13 to 20) over evidence from the
meeting regions: REST answers, signaling messages and close codes, stored rows, files on disk."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protocol.errors import ErrorCode
from protocol.regions import MEETING_REGIONS
from protocol.signaling import MessageType as T
from protocol.signaling import SignalingClose
from roomtrust.comply.checks import check, names_of, require, selected

# MT-15: the personal fields an account may hold, and the keys and state beside them
PERSONAL_FIELDS = frozenset(
    {"username", "password_hash", "display_name", "first_name", "last_name", "address", "company"}
)
KEYS_AND_STATE = frozenset(
    {
        "id",
        "enterprise_id",
        "kind",
        "role",
        "custom_role_id",
        "access",
        "created_at",
        "registration_digest",
        "cert_serial",
        "sso",
    }
)
CDR_FIELDS = frozenset({"cdr_id", "conference_id", "region", "started_at", "ended_at", "legs"})
CDR_LEG_FIELDS = frozenset({"account_id", "joined_at", "left_at", "encrypted", "transport"})
SECRETS_OF_A_MEETING = frozenset({T.ROSTER, T.ADMITTED, T.MEDIA_KEYS, T.CHAT, T.NOTICE})

# -- MT-01, MT-02 ---------------------------------------------------------------------------------


@check("meeting")
def conference_hosted_in(conference: Mapping[str, Any], region: str) -> None:
    """The conference was created in the expected region and its ID says so."""
    hosted, cid = conference.get("region"), str(conference.get("conference_id", ""))
    require(hosted == region, f"the conference is hosted in {hosted!r}, not {region!r}")
    require(cid.startswith(f"{region}-"), f"the conference ID {cid!r} is not of region {region}")


@check("meeting")
def redirected_to_home_region(status: int, body: Mapping[str, Any] | None, region: str) -> None:
    """Another region does not serve the conference: it answers 409 and names its home region."""
    require(status == 409, f"the other region answered {status} for the conference, not 409")
    reason = str((body or {}).get("reason", ""))
    require(region in reason, f"the refusal does not name region {region!r}: {reason!r}")


@check("meeting")
def stored_only_in_home_region(
    counts: Mapping[str, int], region: str, regions: Collection[str] = MEETING_REGIONS
) -> None:
    """The conference is stored once, in its home region, and in no other region's store."""
    selected(counts, "region stores")
    expected = {r: int(r == region) for r in regions}
    require(dict(counts) == expected, f"rows of the conference per region: {dict(counts)}")


@check("meeting")
def placed_nearest(answer: Mapping[str, Any], region: str) -> None:
    """Placement picks the expected region, the one with the least latency among the candidates."""
    candidates: Mapping[str, float] = selected(answer.get("candidates") or {}, "candidate regions")
    require(answer.get("region") == region, f"placed in {answer.get('region')!r}, not {region!r}")
    best = min(candidates.values())
    require(
        candidates.get(region) == best,
        f"{region} has latency {candidates.get(region)}; the best candidate has {best}",
    )


# -- MT-06 ----------------------------------------------------------------------------------------


@check("meeting")
def no_encryption_switch(settings: Mapping[str, Any], before: Mapping[str, Any]) -> None:
    """The enterprise settings hold no encryption switch, and the refused change left them as
    they were."""
    selected(settings, "enterprise settings")
    switches = [k for k in settings if "encrypt" in k]
    require(not switches, f"the settings hold encryption switches {switches}")
    changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    require(not changed and set(before) == set(settings), f"the settings changed: {changed}")


@check("meeting")
def plain_connections_refused(answers: Mapping[str, str | None]) -> None:
    """Plain-text connection attempts get no answer (`answers`: attempt -> None when refused,
    else what answered)."""
    selected(answers, "plain-text connection attempts")
    answered = {k: v for k, v in answers.items() if v is not None}
    require(not answered, f"plain-text connections were answered: {answered}")


# -- MT-09 ----------------------------------------------------------------------------------------


@check("meeting")
def waits_in_lobby(person: str, types: Sequence[str]) -> None:
    """A newcomer to a locked conference is told to wait and gets neither admission nor roster."""
    leaked = {T.ROSTER, T.ADMITTED} & set(types)
    require(not leaked, f"{person} got {names_of(leaked)} without a moderator's decision")
    require(T.LOBBY_WAITING in types, f"{person} was never told to wait; got {list(types)}")


@check("meeting")
def moderator_told_of(person: str, knock: Mapping[str, Any] | None) -> None:
    """The moderator is told who knocks at the lobby."""
    require(knock, f"the moderator was not told that {person} waits")
    assert knock is not None
    who = (knock.get("participant") or {}).get("display_name")
    require(who == person, f"the moderator was told of {who!r}, not {person!r}")


@check("meeting")
def in_roster(person: str, roster: Mapping[str, Any]) -> None:
    """An admitted participant appears in the roster they receive."""
    shown = {p.get("display_name") for p in selected(roster.get("participants") or [], "roster")}
    require(person in shown, f"{person} is not in the roster {names_of(shown)}")


@check("meeting")
def rejected_without_secrets(person: str, close_code: int | None, types: Sequence[str]) -> None:
    """A rejected newcomer is told so, disconnected (4403), and never got roster, keys or chat."""
    require(T.REJECTED in types, f"{person} was not told of the rejection; got {list(types)}")
    rejected = int(SignalingClose.FORBIDDEN)
    require(close_code == rejected, f"{person}'s socket closed with {close_code}, not {rejected}")
    leaked = SECRETS_OF_A_MEETING & set(types)
    require(not leaked, f"rejected {person} received {names_of(leaked)}")


@check("meeting")
def only_moderator_admitted(
    roster: Mapping[str, Any], moderator: str, waiting: int, crowd_types: Sequence[Sequence[str]]
) -> None:
    """After a crowd of joins to a locked conference, the roster holds only the moderator, the
    whole crowd waits in the lobby and no member of it was admitted."""
    names = [p.get("display_name") for p in roster.get("participants") or []]
    require(names == [moderator], f"the roster holds {names}, not only {moderator}")
    lobby = roster.get("lobby") or []
    require(len(lobby) == waiting, f"{len(lobby)} wait in the lobby, not {waiting}")
    selected(crowd_types, "joining sockets")
    admitted = [i for i, t in enumerate(crowd_types) if {T.ADMITTED, T.ROSTER} & set(t)]
    require(not admitted, f"{len(admitted)} of the crowd were admitted by nobody")


@check("meeting")
def hidden_from_directory(listed_ids: Collection[str], hidden_ids: Collection[str]) -> None:
    """One-off and hidden conferences appear in no directory listing."""
    selected(hidden_ids, "conferences that must stay hidden")
    shown = set(listed_ids) & set(hidden_ids)
    require(not shown, f"the directory lists {names_of(shown)}")


@check("meeting")
def join_refused_not_found(error: Mapping[str, Any] | None) -> None:
    """Joining a deleted conference is refused because it no longer exists."""
    require(error, "joining the deleted conference got no error")
    assert error is not None
    got = (error.get("error"), error.get("field"))
    require(got == (ErrorCode.NOT_FOUND, "conference_id"), f"the join was answered with {got}")


@check("meeting")
def refused_as_forbidden(errors: Sequence[Mapping[str, Any]], because: str | None = None) -> None:
    """Each attempt was refused as Forbidden (with `because` in the reason, when given)."""
    selected(errors, "refusals")
    wrong = [e for e in errors if e.get("error") != ErrorCode.FORBIDDEN]
    require(not wrong, f"attempts were not refused as Forbidden: {wrong}")
    if because:
        vague = [e.get("reason") for e in errors if because not in str(e.get("reason"))]
        require(not vague, f"refusals do not mention the {because}: {vague}")


@check("meeting")
def told_muted_by(notices: Mapping[str, Mapping[str, Any]], by: str) -> None:
    """Each participant is told they were muted, and by whom (`notices`: person -> message)."""
    selected(notices, "muted participants")
    wrong = {p: n.get("by") for p, n in notices.items() if n.get("by") != by}
    require(not wrong, f"participants were told they were muted by {wrong}, not {by}")


@check("meeting")
def video_off(state: Mapping[str, Any]) -> None:
    """The others see the moderator's video off."""
    require(state.get("video") is False, f"the media state shows video {state.get('video')!r}")


@check("meeting")
def closed_with(
    person: str, close_code: int | None, expected: int, types: Sequence[str], told: str | None
) -> None:
    """A participant's signaling socket was closed with the expected code (and they were told
    why, when `told` names the message)."""
    require(close_code == expected, f"{person}'s socket closed with {close_code}, not {expected}")
    if told:
        require(told in types, f"{person} was not sent {told!r}; got {list(types)}")


# -- MT-10, MT-11 ---------------------------------------------------------------------------------


@check("meeting")
def revoked_refused(
    status: int,
    body: Mapping[str, Any] | None,
    login_status: int,
    login_body: Mapping[str, Any] | None,
    expected: int,
) -> None:
    """A revoked user's next request is refused with a reason, and so is a new login."""
    require(status == expected, f"the revoked user's request got {status}, not {expected}")
    require((body or {}).get("reason"), f"the refusal gives no reason: {body}")
    require(login_status == 401, f"the revoked user's login got {login_status}, not 401")
    reason = (login_body or {}).get("reason")
    require(reason == "access revoked", f"the login refusal says {reason!r}")


@check("meeting")
def room_system_limited(me: Mapping[str, Any], accounts_status: int) -> None:
    """A room system is known by its certificate and may only place and receive calls."""
    require(me.get("kind") == "room_system", f"the certificate logs in as {me.get('kind')!r}")
    held = set(me.get("permissions") or [])
    require(
        held == {"call.place_receive", "media.self_disable"},
        f"the room system holds {names_of(held)}",
    )
    require(accounts_status == 403, f"the room system listed accounts ({accounts_status})")


@check("meeting")
def holds_exactly(held: Collection[str], expected: Collection[str]) -> None:
    """An account holds exactly the listed permissions."""
    selected(expected, "expected permissions")
    extra, missing = set(held) - set(expected), set(expected) - set(held)
    require(
        not extra and not missing,
        f"the account holds {names_of(extra)} too much and misses {names_of(missing)}",
    )


@check("meeting")
def cannot_assign_role(created_role: str | None, status: int) -> None:
    """An operation manager creates only plain users and cannot assign roles."""
    require(created_role == "user", f"the operation manager created a {created_role!r}")
    require(status == 403, f"the operation manager's role change got {status}, not 403")


@check("meeting")
def gated_by_permission(statuses: Mapping[str, int], holders: Mapping[str, bool]) -> None:
    """Each probe (`role -> endpoint`) succeeds (2xx) exactly where the role holds the endpoint's
    permission, and is refused with 403 everywhere else."""
    selected(statuses, "probed endpoints")
    chosen = [holders[probe] for probe in statuses]
    require(not all(chosen), "every probed role holds the permission: nothing shows a 403")
    require(any(chosen), "no probed role holds the permission: nothing shows it granted")
    for probe, status in statuses.items():
        allowed = holders[probe]
        if allowed:
            require(200 <= status < 300, f"{probe} holds the permission and got {status}")
        else:
            require(status == 403, f"{probe} lacks the permission and got {status}, not 403")


# -- MT-13, MT-14, MT-15 --------------------------------------------------------------------------


@check("meeting")
def retained_until_deadline(rows: Mapping[str, int], me_status: int) -> None:
    """Before the deadline the enterprise's accounts and call record are still stored and it can
    still log in."""
    got = (rows.get("accounts"), rows.get("call_records"))
    require(got == (2, 1), f"(accounts, call records) stored: {got}, expected (2, 1)")
    require(me_status == 200, f"the administrator's request got {me_status} before the deadline")


@check("meeting")
def deleted_after_deadline(rows: Mapping[str, int], me_status: int) -> None:
    """After the deadline every row of the enterprise is gone and its administrator refused."""
    selected(rows, "tables counted")
    left = {t: n for t, n in rows.items() if n}
    require(not left, f"rows left after the deadline: {left}")
    require(me_status == 401, f"the administrator's request got {me_status}, not 401")


@check("meeting")
def log_retention(old_exists: bool, young_exists: bool) -> None:
    """Retention deletes the log file past 180 days and keeps the younger one."""
    require(not old_exists, "the log file older than 180 days is still there")
    require(young_exists, "the log file younger than 180 days was deleted")


@check("meeting")
def only_listed_account_fields(columns: Collection[str]) -> None:
    """The accounts table holds the listed personal fields and nothing else personal."""
    personal = set(selected(columns, "columns of the accounts table")) - KEYS_AND_STATE
    extra, missing = personal - PERSONAL_FIELDS, PERSONAL_FIELDS - personal
    require(not extra, f"the accounts table stores unlisted fields {names_of(extra)}")
    require(not missing, f"the accounts table lacks {names_of(missing)}")


@check("meeting")
def cdr_metadata_only(
    records: Sequence[Mapping[str, Any]], region: str, accounts: Collection[str], chat_text: str
) -> None:
    """The call record of the conference holds only metadata: its fields, its region, one
    encrypted leg per account with times, and none of the chat."""
    require(len(records) == 1, f"{len(records)} call records of the conference, expected 1")
    record = records[0]
    require(set(record) == CDR_FIELDS, f"the call record has fields {names_of(record)}")
    require(record.get("region") == region, f"the call record is of region {record.get('region')}")
    require(record.get("ended_at"), "the call record has no end time")
    legs = selected(record.get("legs") or [], "call legs")
    seen = {leg.get("account_id") for leg in legs}
    require(seen == set(accounts), f"legs of {names_of(seen)}, expected {names_of(accounts)}")
    for leg in legs:
        require(set(leg) == CDR_LEG_FIELDS, f"a leg has fields {names_of(leg)}")
        require(
            leg.get("encrypted") is True and leg.get("joined_at") and leg.get("left_at"),
            f"a leg is not encrypted or lacks times: {leg}",
        )
    require(chat_text not in str(records), "the call record holds chat text")


# -- MT-16, MT-17, MT-18 --------------------------------------------------------------------------


@check("meeting")
def told_who_records(notices: Mapping[str, Sequence[Mapping[str, Any]]], recorder: str) -> None:
    """Every participant was told on screen that the call is recorded, and by whom
    (`notices`: person -> the notices they received)."""
    selected(notices, "participants")
    for person, got in notices.items():
        started = [n for n in got if n.get("kind") == "recording.started"]
        require(started, f"{person} got no recording notice")
        first = started[0]
        require(
            first.get("by") == recorder and recorder in str(first.get("text")),
            f"{person} was told the recording is by {first.get('by')!r}: {first.get('text')!r}",
        )


@check("meeting")
def recording_only_in(
    new_files: Mapping[str, Collection[str]],
    region: str,
    recording_id: str,
    raw: bytes,
    conference_id: str,
) -> None:
    """The recording file exists only under its conference's region, and its bytes do not show
    the conference in the clear (`new_files`: region -> recording files made by the call)."""
    here = set(new_files.get(region, ()))
    require(here == {f"{recording_id}.rec"}, f"new recording files in {region}: {names_of(here)}")
    elsewhere = {r: names_of(f) for r, f in new_files.items() if r != region and f}
    require(not elsewhere, f"recording files outside {region}: {elsewhere}")
    require(raw, "the recording file is empty")
    require(conference_id.encode() not in raw, "the recording file is not encrypted")


@check("meeting")
def not_shared_outside(share_status: int, stranger_status: int) -> None:
    """Sharing a recording with another organisation is refused, and it stays invisible there."""
    require(share_status == 403, f"sharing outside the organisation got {share_status}, not 403")
    require(stranger_status == 404, f"the other organisation got {stranger_status}, not 404")


@check("meeting")
def chat_echoed(sent: str, received: Mapping[str, Any] | None) -> None:
    """Once enabled, a chat message is delivered."""
    text = (received or {}).get("text")
    require(text == sent, f"the chat delivered {text!r}, not {sent!r}")


@check("meeting")
def marker_nowhere(traces: Mapping[str, Mapping[str, Sequence[str]]], logs_searched: int) -> None:
    """The chat marker is in no database, log or storage file of any region (`traces`: region ->
    where it was found), and there were server logs to search."""
    selected(traces, "meeting regions searched")
    found = {r: {k: v for k, v in t.items() if v} for r, t in traces.items()}
    found = {r: t for r, t in found.items() if t}
    require(not found, f"the chat marker is stored: {found}")
    require(logs_searched > 0, "no server log to search")


# -- MT-19, MT-20 ---------------------------------------------------------------------------------


@check("meeting")
def oplog_holds(entries: Sequence[Mapping[str, Any]], actions: Collection[str]) -> None:
    """The operation log holds each administrative action, each with its actor and time."""
    logged = {e.get("action") for e in selected(entries, "operation log entries")}
    missing = set(actions) - logged
    require(not missing, f"the operation log lacks {names_of(missing)}")
    anonymous = [e for e in entries if not (e.get("actor") and e.get("at"))]
    require(not anonymous, f"entries without actor or time: {anonymous[:3]}")


@check("meeting")
def statistics_access(statuses: Mapping[str, int], expected: int) -> None:
    """Each role and statistics path got the expected status (200 seen, 403 refused)."""
    selected(statuses, "statistics requests")
    wrong = {k: v for k, v in statuses.items() if v != expected}
    require(not wrong, f"statistics requests not answered {expected}: {wrong}")
