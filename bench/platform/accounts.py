"""Accounts on a server: users, groups, namespace ownership, hashed API tokens, and who may read or write what.

The rules (docs/api.md, "Authorization"):
- anyone, signed in or not, reads public datasets, runs and leaderboards;
- a top-level namespace (the first segment of ``alice/drawer-demos``) is owned by one user or one
  group; only its owner (or a member of the owning group) and admins publish, yank, delete or see
  private datasets in it; a namespace nobody owns (e.g. ``metaworld`` from local recipes) is
  writable by admins only;
- every user owns the namespace named after them; tokens are shown once and stored as sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from bench.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from bench.platform import db
from bench.platform.db import GroupMemberRow, GroupRow, NamespaceRow, TokenRow, UserRow

_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
TOKEN_PREFIX = "bench_"


def check_name(kind: str, name: str) -> str:
    """User, group, namespace and token names: lower-case letters, digits, '_' and '-', up to 64."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"{kind} name {name!r} is invalid; use lower-case letters, digits, '_' and '-' "
                           "(starting with a letter or digit, at most 64 characters)")
    return name


def token_sha256(token: str) -> str:
    # Tokens are 256 random bits, so one unsalted hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def top_namespace(namespace_or_id: str) -> str:
    return namespace_or_id.split("/", 1)[0]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with their groups, or nobody (``ANONYMOUS``)."""

    user_id: int | None
    name: str | None
    is_admin: bool = False
    group_ids: frozenset[int] = field(default_factory=frozenset)
    token_id: int | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None


ANONYMOUS = Principal(None, None)
# The server's own command line (bench users/groups ...), trusted like an admin.
SYSTEM = Principal(None, "system", is_admin=True)


class Accounts:
    def __init__(self, engine: sa.Engine):
        self.session = db.make_sessionmaker(engine)

    # -- users and groups -----------------------------------------------------------------------------
    def create_user(self, name: str, admin: bool = False) -> dict:
        check_name("user", name)
        try:
            with self.session.begin() as session:
                if session.scalar(sa.select(NamespaceRow).where(NamespaceRow.name == name)) is not None:
                    raise Conflict(f"namespace {name!r} already exists; choose another user name")
                user = UserRow(name=name, is_admin=admin)
                session.add(user)
                session.flush()
                session.add(NamespaceRow(name=name, owner_user_id=user.id))
                return _user_json(user)
        except SqlIntegrityError:
            raise Conflict(f"user {name!r} already exists") from None

    def get_user(self, name: str) -> dict:
        with self.session() as session:
            return _user_json(self._user(session, name))

    def principal_of(self, name: str) -> Principal:
        """A user as a principal (for the server's own command line, which acts for them)."""
        with self.session() as session:
            user = self._user(session, name)
            groups = session.scalars(sa.select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == user.id)).all()
            return Principal(user.id, user.name, user.is_admin, frozenset(groups))

    def list_users(self) -> list[dict]:
        with self.session() as session:
            return [_user_json(u) for u in session.scalars(sa.select(UserRow).order_by(UserRow.name))]

    def create_group(self, name: str, by: Principal) -> dict:
        """A group and the namespace of the same name; its creator is its first member."""
        require_user(by)
        check_name("group", name)
        try:
            with self.session.begin() as session:
                if session.scalar(sa.select(NamespaceRow).where(NamespaceRow.name == name)) is not None:
                    raise Conflict(f"namespace {name!r} already exists; choose another group name")
                group = GroupRow(name=name)
                session.add(group)
                session.flush()
                session.add(GroupMemberRow(group_id=group.id, user_id=by.user_id))
                session.add(NamespaceRow(name=name, owner_group_id=group.id))
                return {"name": group.name, "members": [by.name]}
        except SqlIntegrityError:
            raise Conflict(f"group {name!r} already exists") from None

    def add_member(self, group: str, user: str, by: Principal) -> dict:
        require_user(by)
        with self.session.begin() as session:
            group_row = session.scalar(sa.select(GroupRow).where(GroupRow.name == group))
            if group_row is None:
                raise NotFound(f"no group {group!r}")
            if not (by.is_admin or group_row.id in by.group_ids):
                raise Forbidden(f"only members of {group!r} and admins may add members")
            user_row = self._user(session, user)
            exists = session.get(GroupMemberRow, (group_row.id, user_row.id))
            if exists is None:
                session.add(GroupMemberRow(group_id=group_row.id, user_id=user_row.id))
            members = session.scalars(sa.select(UserRow.name).join(GroupMemberRow, GroupMemberRow.user_id == UserRow.id)
                                      .where(GroupMemberRow.group_id == group_row.id)).all()
            return {"name": group, "members": sorted(set(members) | {user})}

    # -- tokens --------------------------------------------------------------------------------------------
    def create_token(self, user: str, name: str, by: Principal | None = None) -> tuple[str, dict]:
        """A new token for ``user``; returns the token itself (shown once) and its description."""
        check_name("token", name)
        if by is not None and not (by.is_admin or by.name == user):
            raise Forbidden("only admins create tokens for other users")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.session.begin() as session:
            user_row = self._user(session, user)
            row = TokenRow(user_id=user_row.id, name=name, token_sha256=token_sha256(token),
                           prefix=token[:len(TOKEN_PREFIX) + 6])
            session.add(row)
            session.flush()
            return token, _token_json(row, user)

    def list_tokens(self, user: str) -> list[dict]:
        with self.session() as session:
            user_row = self._user(session, user)
            rows = session.scalars(sa.select(TokenRow).where(TokenRow.user_id == user_row.id).order_by(TokenRow.id))
            return [_token_json(row, user) for row in rows]

    def revoke_token(self, token_id: int, by: Principal | None = None) -> dict:
        with self.session.begin() as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}")
            if by is not None and not (by.is_admin or by.user_id == row.user_id):
                raise NotFound(f"no token {token_id}")  # other users' tokens are not theirs to see
            row.revoked_at = row.revoked_at or db.utcnow()
            owner = session.get(UserRow, row.user_id).name
            return _token_json(row, owner)

    def authenticate(self, token: str | None) -> Principal:
        """The principal a bearer token stands for; no token is anonymous; a bad one is an error."""
        if not token:
            return ANONYMOUS
        with self.session.begin() as session:
            row = session.scalar(sa.select(TokenRow).where(TokenRow.token_sha256 == token_sha256(token)))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("the API token is unknown or revoked")
            now = db.utcnow()
            last = row.last_used_at
            if last is None or now - (last if last.tzinfo else last.replace(tzinfo=dt.timezone.utc)) > dt.timedelta(minutes=1):
                row.last_used_at = now  # coarse, so reads do not turn into a write per request
            user = session.get(UserRow, row.user_id)
            groups = session.scalars(sa.select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == user.id)).all()
            return Principal(user.id, user.name, user.is_admin, frozenset(groups), row.id)

    # -- namespaces and permissions --------------------------------------------------------------------------
    def create_namespace(self, name: str, by: Principal, group: str | None = None) -> dict:
        """Admins create namespaces for anyone; a group member may create one owned by their group."""
        require_user(by)
        check_name("namespace", name)
        try:
            with self.session.begin() as session:
                if group is not None:
                    group_row = session.scalar(sa.select(GroupRow).where(GroupRow.name == group))
                    if group_row is None:
                        raise NotFound(f"no group {group!r}")
                    if not (by.is_admin or group_row.id in by.group_ids):
                        raise Forbidden(f"only members of {group!r} and admins may create namespaces for it")
                    row = NamespaceRow(name=name, owner_group_id=group_row.id)
                else:
                    if not by.is_admin:
                        raise Forbidden("only admins create namespaces owned by a user; create a group instead")
                    row = NamespaceRow(name=name, owner_user_id=by.user_id)
                session.add(row)
                session.flush()
                return {"name": name, "owner_user": None if group else by.name, "owner_group": group}
        except SqlIntegrityError:
            raise Conflict(f"namespace {name!r} already exists") from None

    def writable_namespaces(self, principal: Principal) -> set[str] | None:
        """Top-level namespaces the principal may write; None means all (admins)."""
        if principal.is_admin:
            return None
        if not principal.signed_in:
            return set()
        with self.session() as session:
            query = sa.select(NamespaceRow.name).where(sa.or_(
                NamespaceRow.owner_user_id == principal.user_id,
                NamespaceRow.owner_group_id.in_(principal.group_ids or [-1])))
            return set(session.scalars(query).all())

    def can_write(self, principal: Principal, namespace: str) -> bool:
        writable = self.writable_namespaces(principal)
        return writable is None or top_namespace(namespace) in writable

    def require_write(self, principal: Principal, namespace: str) -> None:
        require_user(principal)
        if not self.can_write(principal, namespace):
            raise Forbidden(f"{principal.name} may not publish in namespace {top_namespace(namespace)!r}")

    def can_read(self, principal: Principal, namespace: str, private: bool) -> bool:
        return not private or self.can_write(principal, namespace)

    @staticmethod
    def _user(session, name: str) -> UserRow:
        row = session.scalar(sa.select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row


def require_user(principal: Principal) -> None:
    if not principal.signed_in:
        raise Unauthorized("sign in: send an API token as 'Authorization: Bearer <token>'")


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()


def _user_json(row: UserRow) -> dict:
    return {"name": row.name, "is_admin": row.is_admin, "created_at": _iso(row.created_at)}


def _token_json(row: TokenRow, user: str) -> dict:
    return {"id": row.id, "user": user, "name": row.name, "prefix": row.prefix, "created_at": _iso(row.created_at),
            "last_used_at": _iso(row.last_used_at), "revoked": row.revoked_at is not None}
