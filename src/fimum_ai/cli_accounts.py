"""`fimum db ...` and `fimum users ...`: the operator's side of accounts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fimum_ai._cli_common import fail, out, settings_or_exit
from fimum_ai.db import Database, User, current_revision, head_revision, upgrade
from fimum_ai.errors import FimumError, InvalidInput, NotFound
from fimum_ai.settings import Settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Create and manage users.", no_args_is_help=True)
api_key_app = typer.Typer(help="Personal API keys.", no_args_is_help=True)
users_app.add_typer(api_key_app, name="api-key")


@contextmanager
def _database(migrate: bool = True) -> Iterator[tuple[Settings, Database]]:
    settings = settings_or_exit()
    database = Database(settings)
    try:
        if migrate:
            upgrade(database.engine, settings.database_schema)
        yield settings, database
    except OperationalError as exc:
        fail(f"cannot reach the database ({settings.sqlalchemy_url.split('@')[-1]}): {exc.orig}")
    except FimumError as exc:
        fail(exc.message, code=2 if exc.status in (400, 404, 409, 422) else 1)
    finally:
        database.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (the server also does this on start)."""
    with _database() as (_, database):
        out.print(f"database ({database.dialect}) at revision {current_revision(database.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one this version knows."""
    with _database(migrate=False) as (_, database):
        out.print(f"current: {current_revision(database.engine) or 'empty'}   head: {head_revision()}")


def _find_user(session: Session, who: str) -> User:
    from fimum_ai.accounts.identifiers import parse_identifier

    if "@" in who or who.startswith("+"):
        value = parse_identifier(who).value
        user = session.scalars(select(User).where(or_(User.email == value, User.phone == value))).first()
    else:
        user = session.get(User, who)
    if user is None:
        raise NotFound(f"no user {who}")
    return user


@users_app.command("create")
def users_create(
    identifier: Annotated[str, typer.Argument(help="E-mail address or +E.164 phone number.")],
    tier: Annotated[str, typer.Option(help="free, pro, enterprise (or a tier from the config).")] = "free",
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
) -> None:
    """Create a user (works under every sign-up policy)."""
    from fimum_ai.accounts.identifiers import parse_identifier
    from fimum_ai.accounts.users import check_tier, create_user

    with _database() as (settings, database), database.session() as session, session.begin():
        check_tier(tier, settings.tiers)
        user = create_user(session, parse_identifier(identifier), tier=tier, is_admin=admin)
        out.print(
            f"created user {user.id} ({user.email or user.phone}, tier {tier}{', admin' if admin else ''})"
        )


@users_app.command("list")
def users_list(
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List users, oldest first."""
    from fimum_ai.accounts.users import UserSnapshot, list_users

    with _database() as (_, database), database.session() as session:
        rows, _next = list_users(session, cursor=None, limit=limit)
        if as_json:
            out.print_json(json.dumps([UserSnapshot.of(u).public() for u in rows]))
            return
        table = Table("id", "email", "phone", "tier", "admin", "disabled", "last login")
        for column in table.columns:
            column.overflow = "fold"
        for u in rows:
            last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "-"
            table.add_row(
                u.id, u.email or "-", u.phone or "-", u.tier, str(u.is_admin), str(u.disabled), last
            )
        out.print(table)


@users_app.command("set-tier")
def users_set_tier(
    who: Annotated[str, typer.Argument(help="User id, e-mail address or phone number.")],
    tier: Annotated[str, typer.Argument(help="free, pro, enterprise (or a tier from the config).")],
) -> None:
    """Change a user's tier (takes effect within seconds on every server)."""
    from fimum_ai.accounts.users import check_tier

    with _database() as (settings, database), database.session() as session, session.begin():
        check_tier(tier, settings.tiers)
        user = _find_user(session, who)
        user.tier = tier
        out.print(f"{user.email or user.phone}: tier {tier}")


@users_app.command("disable")
def users_disable(
    who: Annotated[str, typer.Argument(help="User id, e-mail address or phone number.")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again instead.")] = False,
) -> None:
    """Disable a user and end all their sessions (or `--enable` them again)."""
    with _database() as (settings, database):
        with database.session() as session, session.begin():
            user = _find_user(session, who)
            user.disabled = not enable
            user_id, label = user.id, user.email or user.phone
        if not enable:
            asyncio.run(_end_sessions(settings, database, user_id))
        out.print(f"{label}: {'enabled' if enable else 'disabled, every session ended'}")


async def _end_sessions(settings: Settings, database: Database, user_id: str) -> None:
    from fimum_ai.accounts.revocation import build_revocation_store
    from fimum_ai.accounts.sessions import SessionService
    from fimum_ai.accounts.tokens import TokenCodec, signing_key
    from fimum_ai.accounts.users import UserCache

    codec = TokenCodec(
        signing_key(settings),
        access_ttl_s=settings.auth.access_ttl_s,
        refresh_ttl_s=settings.auth.refresh_ttl_s,
    )
    revocation = build_revocation_store(settings, database)
    await revocation.start()
    try:
        await SessionService(database, codec, revocation, UserCache(0)).logout_everywhere(user_id)
    finally:
        await revocation.aclose()


@api_key_app.command("create")
def api_key_create(
    who: Annotated[str, typer.Argument(help="User id, e-mail address or phone number.")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")] = "cli",
) -> None:
    """Create a personal API key; it is printed once and stored only as a hash."""
    from fimum_ai.accounts import api_keys

    if not 1 <= len(name) <= 100:
        raise InvalidInput("name: 1 to 100 characters")
    with _database() as (_, database), database.session() as session, session.begin():
        user = _find_user(session, who)
        row, key = api_keys.create_key(session, user.id, name)
        out.print(f"API key {row.id} for {user.email or user.phone} (shown once, store it now):")
        out.print(key, highlight=False, soft_wrap=True)
