"""The built-in flavors, one module each, imported only through the table in
:mod:`loopml.models.flavor` (never here: importing this package loads no ML library)."""

__all__: list[str] = []
