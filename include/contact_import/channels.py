"""The channel registry: the only place that knows what each channel looks like.

Adding a channel is one entry in CHANNELS: its Great Expectations suite is
expectations/base.json, named after the channel and given its User ID pattern
(validation.suite_spec).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Channel:
    name: str  # also its GX suite's name
    label: str
    user_id_header: str
    user_id_pattern: str  # full-match regular expression: the GX suite's invalid_user_id rule
    omo_binding: bool
    example_user_ids: tuple[str, ...]


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel("line", "LINE", "LINE User ID", r"U[0-9a-f]{32}", True,
                ("U4af4980629a2b2c3d4e5f60718293a4b", "U0123456789abcdef0123456789abcdef")),
        Channel("whatsapp", "WhatsApp", "WhatsApp User ID",
                r"[1-9][0-9]{7,14}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}", True,
                ("886911223344", "US.13491208655302741918")),
        Channel("facebook", "Facebook", "Facebook User ID", r"[0-9]{5,20}", False,
                ("5512345678901234", "5598765432109876")),
        Channel("instagram", "Instagram", "Instagram User ID", r"[0-9]{5,20}", False,
                ("17841400000000001", "17841400000000002")),
        Channel("wechat", "WeChat", "WeChat OpenID", r"[A-Za-z0-9_-]{1,128}", False,
                ("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oUpF8uN95-QsEv0kfTgYaHQkR3x1")),
        Channel("telegram", "Telegram", "Telegram User ID",
                r"[1-9][0-9]{0,15}", False, ("123456789", "987654321")),
    )
}

TAG_MODES = ("append", "overwrite")


def get_channel(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown channel {name!r}; choose one of: {', '.join(CHANNELS)}") from None
