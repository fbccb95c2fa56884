"""Checks of features/media.feature (MT-03, MT-06, MT-08, MT-12) over evidence from live calls:
the frames each participant heard, what a loopback capture shows in the clear, the SRTP tags of
captured packets, relay counters, media gaps across a relay failover, and the PSTN leg's tones and
marks. Every argument is plain data the step measured, so a negative control can hand a check the
same shape with the property broken."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protocol.signaling import MessageType as T
from roomtrust.comply.checks import check, counted, names_of, require, selected

MIN_SIGNALING_BYTES = 1000  # a TLS handshake plus an encrypted media.keys message is more
MIN_TONE_LEVEL = 2000  # a tone that is heard
MAX_SILENT_LEVEL = 300  # a tone that is not
LEAVING = frozenset({T.CONFERENCE_ENDED, T.REMOVED, T.ERROR})

# -- MT-06, MT-12: the captured call -------------------------------------------------------------


@check("media")
def everyone_heard_everyone(
    heard: Mapping[str, Mapping[str, Mapping[str, int]]], audio_frames: int, video_packets: int
) -> None:
    """Each participant heard at least `audio_frames` audio frames and exactly `video_packets`
    video packets from every other one, each carrying its source's marker once decrypted
    (`heard`: listener -> talker -> {"audio", "video", "unmarked"})."""
    people = set(selected(heard, "participants"))
    for listener, talkers in heard.items():
        selected(talkers, f"participants heard by {listener}")
        missing = people - {listener} - set(talkers)
        require(not missing, f"{listener} heard nothing of {names_of(missing)}")
        for talker, got in talkers.items():
            audio, video = got.get("audio", 0), got.get("video", 0)
            require(
                audio >= audio_frames,
                f"{listener} heard {audio} of {talker}'s {audio_frames} audio frames",
            )
            require(
                video == video_packets,
                f"{listener} got {video} of {talker}'s {video_packets} video packets",
            )
            unmarked = got.get("unmarked", 0)
            require(
                not unmarked,
                f"{listener} got {unmarked} frame(s) of {talker} without the source's marker",
            )


@check("media")
def nothing_in_clear(
    packets: int,
    marker_hits: int,
    signaling_bytes: int,
    header_found: bool,
    keys_found: Collection[str],
) -> None:
    """A capture of the call shows no media payload and no key material in the clear: the media
    marker is in no packet and no form of any key is in any payload or stream, while the key
    delivery was captured (TLS bytes on the signaling port) and the search is shown able to find
    what is in the clear (the SSRC that SRTP leaves readable)."""
    counted(packets, "captured packets")
    require(
        signaling_bytes > MIN_SIGNALING_BYTES,
        f"only {signaling_bytes} bytes of signaling were captured: the key delivery was not",
    )
    require(
        header_found,
        "the search of the capture did not even find the RTP header's SSRC: it cannot show that "
        "anything is absent",
    )
    require(
        not marker_hits,
        f"the media marker is in the clear in {marker_hits} packet(s): media travels in the clear",
    )
    require(not keys_found, f"key material in the clear: {names_of(keys_found)}")


@check("media")
def media_packets_authenticated(tags: Sequence[Mapping[str, Any]]) -> None:
    """Every captured media packet carries an SRTP tag that authenticates under the keys of its
    participant and direction (`tags`: per packet {"flow", "authenticated", "tag_length",
    "expected"})."""
    selected(tags, "media packets")
    forged = [t.get("flow") for t in tags if not t.get("authenticated")]
    require(
        not forged,
        f"{len(forged)} of {len(tags)} media packet(s) do not authenticate, e.g. {forged[:3]}",
    )
    odd = [
        (t.get("flow"), t.get("tag_length")) for t in tags if t.get("tag_length") != t["expected"]
    ]
    require(not odd, f"packets whose tag is not of the profile's length: {odd[:3]}")


@check("media")
def flows_opened_outbound(
    first: Mapping[str, str], participants: Collection[str], dialled_in: int
) -> None:
    """Every participant's media flow began with a packet it sent to the relay, and nothing
    connected to a participant (`first`: participant -> direction of its first packet)."""
    selected(participants, "participants")
    silent = set(participants) - set(first)
    require(not silent, f"no media flow of {names_of(silent)} was captured")
    inbound = {p: d for p, d in first.items() if d != "outbound"}
    require(not inbound, f"media flows opened from outside: {inbound}")
    require(not dialled_in, f"{dialled_in} TCP packet(s) were sent to a participant's media port")


# -- MT-06: plain RTP and removal --------------------------------------------------------------


@check("media")
def plain_rtp_reached_nobody(person: str, sent: int, before: int, after: int, plain: int) -> None:
    """While only plain RTP was sent, `person` received none of it and nothing else
    (`before`, `after`: the packets it had received; `plain`: the plain ones among them)."""
    counted(sent, "plain RTP packets sent")
    require(not plain, f"{person} received {plain} of the {sent} plain RTP packets")
    require(
        after == before,
        f"{person} received {after - before} packet(s) while only plain RTP was sent",
    )


@check("media")
def plain_rtp_counted(before: int, after: int, sent: int) -> None:
    """The relays counted exactly the plain RTP packets sent as dropped."""
    counted(sent, "plain RTP packets sent")
    require(
        after - before == sent,
        f"the relays counted {after - before} more plain RTP packets, not {sent}",
    )


@check("media")
def rekeyed_and_hearing(listeners: Mapping[str, Mapping[str, Any]], min_frames: int) -> None:
    """Each remaining participant took exactly one rekey, waits for none, and heard the other
    after it (`listeners`: person -> {"rekeys", "rekey_pending", "frames_since"})."""
    selected(listeners, "remaining participants")
    for person, got in listeners.items():
        require(got.get("rekeys") == 1, f"{person} took {got.get('rekeys')} rekeys, not 1")
        require(not got.get("rekey_pending"), f"{person} still waits for a rekey")
        frames = got.get("frames_since", 0)
        require(
            frames > min_frames,
            f"{person} heard {frames} frames after the rekey, not more than {min_frames}",
        )


@check("media")
def nothing_after_removal(person: str, before: int, after: int) -> None:
    """A removed participant received media before its removal and nothing after it."""
    counted(before, f"packets {person} received before the removal")
    require(not after, f"{person} still received {after} packets after the removal")


@check("media")
def old_keys_open_nothing(person: str, opened_before: int, after: int, opened_after: int) -> None:
    """A removed participant's old keys open none of the media captured after the removal, while
    before it its receive key opened what it was sent (so the check can succeed)."""
    counted(after, "media packets captured after the removal")
    require(
        opened_before > 0,
        f"{person}'s old receive key opened nothing even before the removal: the check cannot tell",
    )
    require(
        not opened_after,
        f"{person}'s old keys open {opened_after} of the {after} packets after the removal",
    )


# -- MT-03: failover -------------------------------------------------------------------------------


@check("media")
def moved_off_relay(relay_of: Mapping[str, str | None], killed: str) -> None:
    """Every participant holds a grant on a relay other than the killed one
    (`relay_of`: participant -> relay name)."""
    selected(relay_of, "participants")
    stuck = {p: r for p, r in relay_of.items() if r is None or r == killed}
    require(not stuck, f"participants not moved off the killed relay {killed}: {stuck}")


@check("media")
def media_back_within(
    flows: Mapping[str, Mapping[str, Any]], limit: float, min_after: int = 20
) -> None:
    """Every flow between two participants was heard before the relay failed and again after it,
    with a gap shorter than `limit` seconds (`flows`: "talker -> listener" -> {"before",
    "after", "gap"})."""
    selected(flows, "media flows between participants")
    lost = [f for f, g in flows.items() if not g.get("before") or g.get("after", 0) <= min_after]
    require(not lost, f"no longer heard after the relay failed: {lost}")
    slow = {f: g.get("gap") for f, g in flows.items() if g.get("gap") is None or g["gap"] >= limit}
    require(not slow, f"media gaps of {limit:g} s or more: {slow}")


@check("media")
def nobody_left(types: Mapping[str, Collection[str]], records: Sequence[Mapping[str, Any]]) -> None:
    """No participant was told the call ended, that it was removed or failed, and the conference's
    call record holds one open leg per participant (`types`: participant -> message types)."""
    selected(types, "participants")
    told = {p: names_of(LEAVING & set(t)) for p, t in types.items() if LEAVING & set(t)}
    require(not told, f"participants left the conference: {told}")
    require(len(records) == 1, f"{len(records)} call records of the conference, expected 1")
    legs = records[0].get("legs") or []
    require(
        len(legs) == len(types),
        f"the call record has {len(legs)} legs for {len(types)} participants",
    )
    closed = [leg.get("account_id") for leg in legs if leg.get("left_at") is not None]
    require(not closed, f"legs of the call record were closed: {closed}")


@check("media")
def relay_replaced(healthy: Collection[str], killed: str, relays: int) -> None:
    """The region runs `relays` healthy relays again, and the killed one is not among them."""
    selected(healthy, "healthy relays")
    require(killed not in healthy, f"the killed relay {killed} answers again")
    require(
        len(healthy) >= relays,
        f"{len(healthy)} healthy relay(s) {names_of(healthy)}, not {relays}: none replaced {killed}",
    )


# -- MT-08: the PSTN leg ---------------------------------------------------------------------------


@check("media")
def phone_hears(
    packets: int,
    payload_types: Collection[int],
    levels: Mapping[int, float],
    heard: Collection[int],
    silent: Collection[int],
    min_packets: int = 25,
) -> None:
    """The phone got G.711 mu-law audio (payload type 0) in which the conference's tones are loud
    and its own tone and an unused one are not (`levels`: Hz -> tone level)."""
    counted(packets, "packets the phone received")
    require(packets >= min_packets, f"the phone got {packets} packets, fewer than {min_packets}")
    types = sorted(set(payload_types))
    require(types == [0], f"the phone got payload types {types}, not only 0 (PCMU)")
    selected(heard, "tones the phone must hear")
    quiet = {hz: levels.get(hz) for hz in heard if levels.get(hz, 0) <= MIN_TONE_LEVEL}
    require(not quiet, f"the phone does not hear the tones (Hz: level) {quiet}")
    loud = {hz: levels.get(hz) for hz in silent if levels.get(hz, float("inf")) >= MAX_SILENT_LEVEL}
    require(not loud, f"the phone hears tones it must not (Hz: level) {loud}")


@check("media")
def conference_hears_phone(
    heard: Mapping[str, Mapping[str, float]], hz: int, min_frames: int = 35
) -> None:
    """Each participant heard the phone's tone in SRTP frames that all authenticated
    (`heard`: person -> {"frames", "level", "bad_tags"})."""
    selected(heard, "participants")
    for person, got in heard.items():
        frames = got.get("frames", 0)
        require(frames > min_frames, f"{person} heard {frames} frames of the phone")
        level = got.get("level", 0)
        require(level > MIN_TONE_LEVEL, f"{person} hears the phone's {hz} Hz at level {level}")
        bad = got.get("bad_tags")
        require(bad == 0, f"{person} dropped {bad} frame(s) whose SRTP tag failed")


@check("media")
def phone_leg_only_unencrypted(
    legs: Mapping[str, Mapping[str, Any]],
    phone: str,
    others: int,
    transport_prefix: str | None = None,
) -> None:
    """The phone's leg is marked unencrypted (and of the PSTN transport, when given) and each of
    the `others` participants' legs encrypted (`legs`: account -> roster entry or call leg)."""
    selected(legs, "legs")
    require(phone in legs, f"no leg of the phone {phone} among {names_of(legs)}")
    leg = legs[phone]
    require(
        leg.get("encrypted") is False,
        f"the phone's leg is marked encrypted={leg.get('encrypted')!r}",
    )
    if transport_prefix is not None:
        transport = str(leg.get("transport", ""))
        require(
            transport.startswith(transport_prefix),
            f"the phone's leg has transport {transport!r}, not {transport_prefix}*",
        )
    rest = {account: other for account, other in legs.items() if account != phone}
    require(len(rest) == others, f"{len(rest)} other legs, expected {others}")
    plain = [account for account, other in rest.items() if other.get("encrypted") is not True]
    require(not plain, f"legs not marked encrypted: {names_of(plain)}")


@check("media")
def dial_in_refused(answer: Mapping[str, Any], because: str) -> None:
    """A phone's dial-in was refused, and the refusal names why."""
    state = answer.get("state")
    require(state == "refused", f"the dial-in ended {state!r}, not refused")
    reason = answer.get("reason")
    require(because in str(reason), f"the refusal does not name the {because}: {reason!r}")


# -- MT-16: what a recording holds -----------------------------------------------------------------

MIN_RECORDED_TONE_DB = -35.0  # a speaker's tone in the recording (a marker tone is about -18 dBFS)
TONE_ABOVE_REFERENCE_DB = 20.0  # and this far above every band where nothing sounds


@check("media")
def recording_holds_tones(
    measured: Mapping[str, Any], tones: Collection[int], min_seconds: float = 1.0
) -> None:
    """The downloaded recording plays (sox reads it as audio of at least `min_seconds`) and holds
    each speaker's marker tone, loud and well above the bands where nobody spoke (`measured`:
    what `roomtrust.comply.audio.measure` found: "playable", "duration", "levels_db" Hz -> dBFS,
    "reference_db" Hz -> dBFS)."""
    selected(tones, "tones to find in the recording")
    require(
        measured.get("playable"),
        f"sox cannot play the recording ({measured.get('bytes', 0)} bytes): "
        f"{measured.get('error')}",
    )
    duration = float(measured.get("duration") or 0.0)
    require(
        duration >= min_seconds,
        f"the recording lasts {duration:.2f} s, less than the {min_seconds:.2f} s recorded",
    )
    levels: Mapping[int, float] = measured.get("levels_db") or {}
    references: Mapping[int, float] = selected(
        measured.get("reference_db") or {}, "reference bands of the recording"
    )
    ceiling = max(references.values())
    missing = {hz: levels.get(hz) for hz in tones if levels.get(hz) is None}
    require(not missing, f"the tones {names_of(missing)} Hz were not measured")
    quiet = {hz: levels[hz] for hz in tones if levels[hz] < MIN_RECORDED_TONE_DB}
    require(
        not quiet,
        f"the recording does not hold the tones (Hz: dBFS) {quiet}, "
        f"quieter than {MIN_RECORDED_TONE_DB} dBFS",
    )
    buried = {hz: levels[hz] for hz in tones if levels[hz] < ceiling + TONE_ABOVE_REFERENCE_DB}
    require(
        not buried,
        f"the tones (Hz: dBFS) {buried} are not {TONE_ABOVE_REFERENCE_DB} dB above the loudest "
        f"band where nothing sounds ({ceiling} dBFS): the recording is noise, not the call",
    )
