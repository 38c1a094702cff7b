"""Model versions looked up without SQLAlchemy on the embedded store (see
:mod:`loopml.store.quick_read`): for a cold ``loopml.load_model("models:/…")`` and for a
server asking every second which version an alias points to."""

from __future__ import annotations

from loopml.config import Settings
from loopml.errors import InvalidArgument
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.store.quick_read import read_row

__all__ = ["model_tree_quickly", "version_quickly"]

_SELECT = ("SELECT v.version, v.tree FROM model_versions v JOIN registered_models m "
           "ON m.id = v.model_id ")
_BY_ALIAS = (_SELECT + "JOIN model_aliases a ON a.model_id = m.id AND a.version = v.version "
             "WHERE m.name = ? AND a.alias = ?")
_BY_NUMBER = _SELECT + "WHERE m.name = ? AND v.version = ?"
_LATEST = (_SELECT + "WHERE m.name = ? AND v.status = 'active' "
           "ORDER BY v.version DESC LIMIT 1")


def version_quickly(settings: Settings, ref: ModelRef) -> tuple[int, str] | None:
    """(version number, package tree) that ``ref`` names; None when the quick read cannot
    answer (not the embedded store, another schema revision, or nothing found), so the
    caller takes the registry's path, which also words every error."""
    if ref.alias is not None:
        row = read_row(settings, _BY_ALIAS, (ref.name, ref.alias))
    elif ref.version is not None:
        row = read_row(settings, _BY_NUMBER, (ref.name, ref.version))
    else:
        row = read_row(settings, _LATEST, (ref.name,))
    return None if row is None else (int(row[0]), str(row[1]))


def model_tree_quickly(settings: Settings, uri: str) -> str | None:
    """The package tree of ``models:/NAME@ALIAS``, ``models:/NAME/N`` or ``models:/NAME``;
    None to take the client's path."""
    try:
        ref = parse_model_ref(uri)
    except InvalidArgument:
        return None
    found = version_quickly(settings, ref)
    return None if found is None else found[1]
