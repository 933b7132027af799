"""TVMScript text of TPAT's PrimFuncs written as source (Gather, GatherND, OneHot, the scatters):
dims as per-buffer shape variables, constant products, and the parse back into a PrimFunc."""

from __future__ import annotations

import tvm.script
from tvm.script import tirx as T  # noqa: F401  (the sources name it)


def static_factor(dims) -> int:
    """The product of the static dims (a symbol counts as 1)."""
    c = 1
    for x in dims:
        if isinstance(x, int):
            c *= x
    return c


class Script:
    """TVMScript text of one PrimFunc: dims as per-buffer shape variables, constants in `ity`."""

    def __init__(self, ity: str):
        self.ity = ity
        self.decls: list = []

    def c(self, x) -> str:
        return f"T.{self.ity}({x})" if isinstance(x, int) else x

    def dims(self, shape, prefix) -> list:
        out = []
        for d, x in enumerate(shape):
            if isinstance(x, int):
                out.append(x)
            else:
                v = f"{prefix}{d}"
                self.decls.append(f"    {v} = T.{self.ity}()")
                out.append(v)
        return out

    def prod(self, items) -> str:
        items = list(items)
        const = static_factor(items)
        syms = [x for x in items if not isinstance(x, int)]
        terms = syms + ([self.c(const)] if const != 1 or not syms else [])
        return "(" + " * ".join(terms) + ")" if len(terms) > 1 else terms[0]

    @staticmethod
    def shp(dims, c) -> str:
        return "(" + ", ".join(c(x) for x in dims) + ("," if len(dims) == 1 else "") + ")"


def parse_primfunc(source: str):
    return tvm.script.from_source("# from tvm.script import tirx as T\n" + source)
