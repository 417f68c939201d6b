"""Conversations, messages and attachments in the database, and their exports.

Tables (migration 0005): `chat_conversations` (per user), `chat_messages` (role, content, model
attribution, token usage, attachments, timestamps) and `chat_attachments` (uploaded images and
documents; image files live under data_dir/chat/). Every function is synchronous SQLAlchemy:
async callers run them through `anyio.to_thread`. Every read and write names the user, so one
user can never reach another's rows (a foreign id is simply "not found").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, delete, exists, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fimum_ai.db import Database
from fimum_ai.db.base import Base, UtcDateTime, new_id, utcnow
from fimum_ai.errors import NotFound

TITLE_CHARS = 200


class Conversation(Base):
    __tablename__ = "chat_conversations"
    __table_args__ = (Index("ix_chat_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_CHARS), default="")
    model: Mapped[str] = mapped_column(String(200), default="fimum/auto")  # the picker's choice
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conversation_seq", "conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # position in the conversation
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | system
    content: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(200))  # the model that actually replied
    finish_reason: Mapped[str | None] = mapped_column(
        String(32)
    )  # stop, length, tool_calls, cancelled, error
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Tool calls and results, model switches, generated image ids, an error: what the UI shows.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ChatAttachment(Base):
    __tablename__ = "chat_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | document
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)  # a document's text
    path: Mapped[str | None] = mapped_column(String(500))  # an image's sanitised PNG, under data_dir
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def _count(result: object) -> int:
    """Rows a DELETE touched (a CursorResult's rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
    }


def message_dict(message: ChatMessage) -> dict[str, Any]:
    usage = None
    if message.prompt_tokens is not None or message.completion_tokens is not None:
        prompt, completion = message.prompt_tokens or 0, message.completion_tokens or 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "usage": usage,
        "attachments": message.attachments or [],
        "meta": message.meta or {},
        "created_at": _iso(message.created_at),
    }


def attachment_dict(attachment: ChatAttachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "kind": attachment.kind,
        "filename": attachment.filename,
        "media_type": attachment.media_type,
        "size_bytes": attachment.size_bytes,
        "chars": len(attachment.text) if attachment.text is not None else None,
        "created_at": _iso(attachment.created_at),
    }


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    id: str
    kind: str
    filename: str
    media_type: str
    text: str | None
    path: str | None


@dataclass(frozen=True, slots=True)
class TurnContext:
    conversation: dict[str, Any]
    history: list[dict[str, Any]]
    attachments: list[StoredAttachment]  # this turn's
    earlier: list[StoredAttachment]  # attached to earlier messages


class ConversationStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    # --- conversations -------------------------------------------------------------------------

    def create(self, user_id: str, title: str = "", model: str = "fimum/auto") -> dict[str, Any]:
        with self.database.session() as session, session.begin():
            conversation = Conversation(user_id=user_id, title=title[:TITLE_CHARS], model=model)
            session.add(conversation)
            session.flush()
            return conversation_dict(conversation)

    def _owned(self, session: Session, user_id: str, conversation_id: str) -> Conversation:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.user_id != user_id:
            raise NotFound("no such conversation", details={"conversation_id": conversation_id})
        return conversation

    def get(self, user_id: str, conversation_id: str) -> dict[str, Any]:
        with self.database.session() as session:
            conversation = self._owned(session, user_id, conversation_id)
            result = conversation_dict(conversation)
            result["messages"] = [message_dict(m) for m in self._messages(session, conversation_id)]
            return result

    def search(self, user_id: str, query: str = "", limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first; `query` matches the title or any message's text (case-insensitive)."""
        statement = select(Conversation).where(Conversation.user_id == user_id)
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            in_messages = exists().where(
                ChatMessage.conversation_id == Conversation.id,
                func.lower(ChatMessage.content).like(pattern, escape="\\"),
            )
            statement = statement.where(
                or_(func.lower(Conversation.title).like(pattern, escape="\\"), in_messages)
            )
        statement = (
            statement.order_by(Conversation.updated_at.desc(), Conversation.id).limit(limit).offset(offset)
        )
        with self.database.session() as session:
            return [conversation_dict(c) for c in session.scalars(statement)]

    def rename(self, user_id: str, conversation_id: str, title: str) -> dict[str, Any]:
        with self.database.session() as session, session.begin():
            conversation = self._owned(session, user_id, conversation_id)
            conversation.title = title[:TITLE_CHARS]
            conversation.updated_at = utcnow()
            return conversation_dict(conversation)

    def delete(self, user_id: str, conversation_id: str) -> None:
        with self.database.session() as session, session.begin():
            conversation = self._owned(session, user_id, conversation_id)
            session.execute(delete(ChatMessage).where(ChatMessage.conversation_id == conversation.id))
            session.delete(conversation)

    def delete_all(self, user_id: str) -> dict[str, Any]:
        """GDPR erasure of every conversation, message and attachment of the user. Returns the
        counts and the attachment files to remove (the caller deletes them after the commit)."""
        with self.database.session() as session, session.begin():
            ids = select(Conversation.id).where(Conversation.user_id == user_id)
            messages = _count(
                session.execute(delete(ChatMessage).where(ChatMessage.conversation_id.in_(ids)))
            )
            conversations = _count(
                session.execute(delete(Conversation).where(Conversation.user_id == user_id))
            )
            paths = [
                p
                for p in session.scalars(select(ChatAttachment.path).where(ChatAttachment.user_id == user_id))
                if p
            ]
            attachments = _count(
                session.execute(delete(ChatAttachment).where(ChatAttachment.user_id == user_id))
            )
        return {
            "conversations": conversations,
            "messages": messages,
            "attachments": attachments,
            "paths": paths,
        }

    # --- messages ------------------------------------------------------------------------------

    @staticmethod
    def _messages(session: Session, conversation_id: str) -> list[ChatMessage]:
        return list(
            session.scalars(
                select(ChatMessage)
                .where(ChatMessage.conversation_id == conversation_id)
                .order_by(ChatMessage.seq)
            )
        )

    def history(self, user_id: str, conversation_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The conversation and its messages (oldest first)."""
        with self.database.session() as session:
            conversation = self._owned(session, user_id, conversation_id)
            return conversation_dict(conversation), [
                message_dict(m) for m in self._messages(session, conversation_id)
            ]

    def add_message(
        self,
        user_id: str,
        conversation_id: str,
        role: str,
        content: str,
        *,
        model: str | None = None,
        finish_reason: str | None = None,
        usage: tuple[int, int] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        meta: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        with self.database.session() as session, session.begin():
            conversation = self._owned(session, user_id, conversation_id)
            seq = session.scalar(
                select(func.coalesce(func.max(ChatMessage.seq), 0)).where(
                    ChatMessage.conversation_id == conversation_id
                )
            )
            message = ChatMessage(
                id=message_id or new_id(),
                conversation_id=conversation_id,
                seq=int(seq or 0) + 1,
                role=role,
                content=content,
                model=model,
                finish_reason=finish_reason,
                prompt_tokens=usage[0] if usage else None,
                completion_tokens=usage[1] if usage else None,
                attachments=attachments or [],
                meta=meta or {},
            )
            session.add(message)
            conversation.updated_at = utcnow()
            if not conversation.title and role == "user" and content.strip():
                conversation.title = " ".join(content.split())[:80]
            session.flush()
            return message_dict(message)

    # --- attachments ---------------------------------------------------------------------------

    def add_attachment(
        self,
        user_id: str,
        *,
        attachment_id: str,
        kind: str,
        filename: str,
        media_type: str,
        size_bytes: int,
        text: str | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        with self.database.session() as session, session.begin():
            attachment = ChatAttachment(
                id=attachment_id,
                user_id=user_id,
                kind=kind,
                filename=filename[:255],
                media_type=media_type,
                size_bytes=size_bytes,
                text=text,
                path=path,
            )
            session.add(attachment)
            session.flush()
            return attachment_dict(attachment)

    def attachments(self, user_id: str, ids: list[str]) -> list[StoredAttachment]:
        """The user's attachments with these ids, in the order given; NotFound names a missing one."""
        if not ids:
            return []
        with self.database.session() as session:
            return self._attachments(session, user_id, ids)

    @staticmethod
    def _attachments(session: Session, user_id: str, ids: list[str]) -> list[StoredAttachment]:
        if not ids:
            return []
        query = select(ChatAttachment).where(ChatAttachment.user_id == user_id, ChatAttachment.id.in_(ids))
        rows = {a.id: a for a in session.scalars(query)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFound("no such attachment", details={"attachment_ids": missing})
        return [
            StoredAttachment(a.id, a.kind, a.filename, a.media_type, a.text, a.path)
            for a in (rows[i] for i in ids)
        ]

    def load_turn(
        self, user_id: str, conversation_id: str | None, model: str, attachment_ids: list[str]
    ) -> TurnContext:
        """Everything a new turn needs, in one round trip: the conversation (created when
        `conversation_id` is None), its messages, this turn's and earlier turns' attachments."""
        with self.database.session() as session, session.begin():
            if conversation_id is None:
                conversation = Conversation(user_id=user_id, model=model)
                session.add(conversation)
                session.flush()
                history: list[dict[str, Any]] = []
            else:
                conversation = self._owned(session, user_id, conversation_id)
                history = [message_dict(m) for m in self._messages(session, conversation.id)]
            current = self._attachments(session, user_id, attachment_ids)
            earlier = self._attachments(
                session, user_id, [a["id"] for m in history for a in m["attachments"]]
            )
            return TurnContext(conversation_dict(conversation), history, current, earlier)

    # --- export --------------------------------------------------------------------------------

    def export(self, user_id: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """One conversation, or every conversation of the user (GDPR export), with messages."""
        with self.database.session() as session:
            if conversation_id is not None:
                conversations = [self._owned(session, user_id, conversation_id)]
            else:
                conversations = list(
                    session.scalars(
                        select(Conversation)
                        .where(Conversation.user_id == user_id)
                        .order_by(Conversation.created_at)
                    )
                )
            return [
                {**conversation_dict(c), "messages": [message_dict(m) for m in self._messages(session, c.id)]}
                for c in conversations
            ]


def export_json(conversations: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "format": "fimum-chat-export",
            "version": 1,
            "exported_at": _iso(utcnow()),
            "conversations": conversations,
        },
        ensure_ascii=False,
        indent=2,
    )


def export_markdown(conversations: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for conversation in conversations:
        parts.append(f"# {conversation['title'] or 'Untitled conversation'}\n")
        parts.append(f"_Started {conversation['created_at']} · id `{conversation['id']}`_\n")
        for message in conversation["messages"]:
            who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(
                message["role"], message["role"]
            )
            if message["role"] == "assistant" and message["model"]:
                who += f" ({message['model']})"
            parts.append(f"## {who} · {message['created_at']}\n")
            parts.append((message["content"] or "_(no text)_") + "\n")
            for attachment in message["attachments"]:
                parts.append(
                    f"- attachment: {attachment.get('filename', '')} ({attachment.get('kind', '')})\n"
                )
            if message["finish_reason"] == "cancelled":
                parts.append("_(stopped by the user)_\n")
        parts.append("\n")
    return "\n".join(parts).rstrip() + "\n"
