"""Messages the app's robot can receive (§3.2): 1:1 chats with the robot and groups where it is
@-mentioned. A profile has a pool of messages *available to send* (message i is a pure function of
the seed and i); only those sent by the `robot.message` mutation are pushed over Stream, and only
pushed ones that reached a connection are in the `robot_message` truth (robot messages cannot be
back-filled and are not re-pushed).

Media (picture, richText pictures, file, audio, video) have a `downloadCode` naming the message and
media slot, signed with the robotCode so codes from another robot are refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import corpus, png
from .blob import Lazy, Part, Raw, Seq
from .render import ContentSpec, render
from .seeding import h64, rng
from .signing import decode_payload, encode_payload, sign, verify
from .storage_model import b62id

SINGLE_TYPES = (("text", 50), ("picture", 15), ("richText", 10), ("file", 10), ("audio", 10), ("video", 5))
GROUP_TYPES = (
    ("text", 70),
    ("picture", 20),
    ("richText", 10),
)  # groups cannot send audio/file/video to robots
MEDIA_TYPES = {"picture", "richText", "file", "audio", "video"}
TEXTS = {
    "zh-Hant": [
        "請幫我查一下上月的報銷進度",
        "明天下午三點開會，請準備資料",
        "合約已經寄出，請查收",
        "今日澳門天氣點樣？",
        "請問年假還剩幾多日？",
    ],
    "zh-Hans": ["帮我查一下报销进度", "明天的会议改到十点", "请把发票发给我"],
    "pt": ["Bom dia, pode enviar o relatório?", "A reunião foi adiada para sexta-feira."],
    "en": ["Please send me the latest price list", "Reminder: submit your timesheet today"],
}


@dataclass
class Conversation:
    conversation_id: str
    type: str  # "1" single, "2" group
    title: str
    members: list[str]  # userids
    open_conversation_id: str = ""


@dataclass
class SentMessage:
    index: int
    payload: dict[str, Any]
    message_id: str  # Stream messageId of the CALLBACK frame
    delivered: bool
    media_sha256: list[str] = field(default_factory=list)


class RobotModel:
    def __init__(
        self,
        seed: int,
        people: Any,
        groups: Any,
        robot_code: str,
        corp_id: str,
        n_convs: int,
        pool: int,
        signing_key: bytes,
    ) -> None:
        self.seed = seed
        self.people = people
        self.groups = groups
        self.robot_code = robot_code
        self.corp_id = corp_id
        self.pool = pool
        self.key = signing_key
        self.chatbot_user_id = "$:LWCP_v1:$" + b62id(24, seed, "chatbot")
        self.sent: list[SentMessage] = []
        self.next_index = 0
        initial = getattr(groups, "initial", people)  # 1:1 chats with staff as generated
        singles = max(1, min(len(initial.users), n_convs // 2))
        self.conversations: list[Conversation] = []
        for u in initial.users[:singles]:
            cid = "cid" + b62id(22, seed, "robot-1on1", u.userid) + "=="
            self.conversations.append(Conversation(cid, "1", "", [u.userid]))
        self._group_convs = [g for g in groups.groups.values() if g.robot_present][
            : max(1, n_convs - singles)
        ]

    def group_conversations(self) -> list[Conversation]:
        out = []
        for g in self._group_convs:
            if g.status == 1:
                out.append(
                    Conversation(
                        g.open_conversation_id, "2", g.name, self.groups.members(g), g.open_conversation_id
                    )
                )
        return out

    def all_conversations(self) -> list[Conversation]:
        return self.conversations + self.group_conversations()

    # -- message generation --------------------------------------------------------------
    def build(
        self, index: int, now_ms: int, conversation: Conversation, msgtype: str | None, text: str | None
    ) -> dict[str, Any]:
        r = rng(self.seed, "robot-msg", index)
        allowed = GROUP_TYPES if conversation.type == "2" else SINGLE_TYPES
        if msgtype is None:
            total = sum(w for _, w in allowed)
            x = r.randrange(total)
            for t, w in allowed:
                if x < w:
                    msgtype = t
                    break
                x -= w
        assert msgtype is not None
        if msgtype not in {t for t, _ in allowed}:
            raise ValueError(
                f"{msgtype} messages cannot reach a robot in a {'group' if conversation.type == '2' else '1:1 chat'}"
            )
        live = [m for m in conversation.members if self.people.user(m) is not None]
        sender = self.people.user(r.choice(live)) if live else self.people.admin
        lang = sender.lang if sender.lang in TEXTS else "zh-Hant"
        msg: dict[str, Any] = {
            "conversationId": conversation.conversation_id,
            "conversationType": conversation.type,
            "msgId": "msg" + b62id(22, self.seed, "msgid", index) + "==",
            "msgtype": msgtype,
            "createAt": now_ms,
            "senderId": "$:LWCP_v1:$" + b62id(24, self.seed, "sender", sender.userid),
            "senderStaffId": sender.userid,
            "senderUnionId": sender.unionid,
            "senderNick": sender.name,
            "senderCorpId": self.corp_id,
            "isAdmin": bool(sender.admin),
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": self.chatbot_user_id,
            "robotCode": self.robot_code,
            "sessionWebhook": f"https://oapi.dingtalk.com/robot/sendBySession?session={b62id(32, self.seed, 'session', index).lower()}",
            "sessionWebhookExpiredTime": now_ms + 90 * 60_000,
        }
        if conversation.type == "2":
            msg["conversationTitle"] = conversation.title
            msg["isInAtList"] = True
            msg["atUsers"] = [{"dingtalkId": self.chatbot_user_id}]
        body = text or r.choice(TEXTS[lang])
        if msgtype == "text":
            msg["text"] = {"content": (" " + body) if conversation.type == "2" else body}
        elif msgtype == "picture":
            msg["content"] = {"downloadCode": self.code(index, 0)}
        elif msgtype == "richText":
            msg["content"] = {
                "richText": [{"text": body}, {"downloadCode": self.code(index, 0), "type": "picture"}]
            }
        elif msgtype == "file":
            ext = r.choice(("docx", "pdf", "xlsx"))
            msg["content"] = {
                "downloadCode": self.code(index, 0),
                "fileName": f"{corpus.TITLES[('invoice', 'zh-Hant')].format(ref=index)}.{ext}",
            }
        elif msgtype == "audio":
            msg["content"] = {
                "duration": r.randrange(1000, 60000),
                "downloadCode": self.code(index, 0),
                "recognition": body,
            }
        elif msgtype == "video":
            msg["content"] = {
                "duration": r.randrange(2000, 120000),
                "downloadCode": self.code(index, 0),
                "videoType": "mp4",
            }
        return msg

    # -- media ---------------------------------------------------------------------------
    def code(self, index: int, slot: int) -> str:
        payload = encode_payload([index, slot])
        return payload + "." + sign(self.key, "code", payload, self.robot_code)

    def parse_code(self, code: str, robot_code: str) -> tuple[int, int] | None:
        payload, _, sig = code.partition(".")
        if not verify(self.key, sig, "code", payload, robot_code):
            return None
        parsed = decode_payload(payload)
        if not (isinstance(parsed, list) and len(parsed) == 2):
            return None
        return int(parsed[0]), int(parsed[1])

    def media(self, index: int, slot: int, msgtype: str, file_name: str = "") -> tuple[Part, str]:
        r = rng(self.seed, "robot-media", index, slot)
        key = f"{self.seed}/robot/{index}/{slot}"
        if msgtype in ("picture", "richText"):
            return png.png_part(key, png.min_size() + r.randrange(0, 250_000)), "image/png"
        if msgtype == "file":
            ext = file_name.rsplit(".", 1)[-1] if "." in file_name else "pdf"
            spec = ContentSpec(
                key, ext, 1, 16_000 + r.randrange(0, 150_000), corpus.pick_kind(key), corpus.pick_lang(key)
            )
            return render(spec), "application/octet-stream"
        size = r.randrange(8_000, 400_000)
        head = b"#!AMR\n" if msgtype == "audio" else b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
        tile = r.randbytes(65536)

        def produce() -> Any:
            left = size - len(head)
            i = 0
            while left > 0:
                chunk = tile[: min(left, 65536)]
                yield h64(key, i).to_bytes(8, "big") + chunk[8:] if len(chunk) > 8 else chunk
                left -= len(chunk)
                i += 1

        return Seq([Raw(head), Lazy(size - len(head), produce)]), (
            "audio/amr" if msgtype == "audio" else "video/mp4"
        )

    def media_sha256(self, index: int, msg: dict[str, Any]) -> list[str]:
        if msg["msgtype"] not in MEDIA_TYPES:
            return []
        part, _ = self.media(index, 0, msg["msgtype"], msg.get("content", {}).get("fileName", ""))
        h = hashlib.sha256()
        for chunk in part.chunks():
            h.update(chunk)
        return [h.hexdigest()]
