"""The condition language: parsed once into a syntax tree, then compiled to Python closures.

Rule text is never handed to eval, exec, compile or `ast`. Three passes: `parse` tokenizes it and
builds a `Syntax` tree (grammar, literals, size limits); the type-check pass (`_Checker`) resolves
every name in the fixed fact vocabulary (rules.facts.FACTS), checks types and catalogue codes and
gives a `Typed` tree; the compile pass (`_Compiler`) builds a tree of plain closures taking a `Facts`
context, each with the key function the engine's index uses. `rules diff` (rules/diff.py) and the
CEL translator (streams/bench/engine.py) read the same syntax tree. See rules/README.md.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rules.exceptions import ConditionError
from rules.facts import FACTS, INDEX_FACTS, INDEX_NONEMPTY, INDEX_NULL, INDEX_PARTIAL, UNKNOWN, Fact, Facts, KeyFn

__all__ = [
    "FUNCTIONS",
    "MAX_CONDITION_CHARS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_LIST_ITEMS",
    "MAX_STRING_CHARS",
    "Compiled",
    "Syntax",
    "Template",
    "Typed",
    "Vocabulary",
    "chain",
    "compile_condition",
    "compile_condition_node",
    "compile_expression",
    "compile_template",
    "parse",
]

MAX_CONDITION_CHARS = 4096
MAX_DEPTH = 32
MAX_LIST_ITEMS = 256
MAX_STRING_CHARS = 256
MAX_INT_DIGITS = 12

Fn = Callable[[Facts], Any]
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<int>[0-9]+)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|-|,|\(|\)|\[|\])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # int, str, name, kw, op, eof
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == ".":
                raise ConditionError(
                    "attribute access is not allowed: '.' may only join the parts of a fact name such as event.fields",
                    offset=pos,
                    text=text,
                )
            if ch in "\"'":
                raise ConditionError(
                    "unterminated string literal (strings end on the same line)", offset=pos, text=text
                )
            raise ConditionError(
                f"unexpected character {ch!r}; conditions use names, literals, and/or/not, "
                "== != < <= > >=, in, not in, -, [lists], (parentheses) and registered functions",
                offset=pos,
                text=text,
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "name" and value in KEYWORDS:
                kind = "kw"
            out.append(_Tok(kind, value, pos))
        pos = m.end()
    out.append(_Tok("eof", "", len(text)))
    return out


# --- typed nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression: the closure, its static type, and its value when it is a constant."""

    fn: Fn
    type: str  # bool, int, str, list, null, any
    nullable: bool = False
    const: bool = False
    value: Any = None
    domain: str | None = None
    fact: str | None = None
    #: For a list: a cheaper closure giving bool(value), used by any()/empty().
    nonempty: Fn | None = None
    #: The node's value computed from the event's index key, or UNKNOWN for keys that do not determine
    #: it (rules.facts.INDEX_FACTS, INDEX_PARTIAL); the engine's index drops what the key decides.
    keyfn: KeyFn | None = None
    #: The operands of an `and` chain (flattened through parentheses), in order.
    conjuncts: tuple[Compiled, ...] = ()
    #: The operands of an `or` chain (flattened through parentheses), in order.
    disjuncts: tuple[Compiled, ...] = ()
    #: For `not x`: x.
    operand: Compiled | None = None
    #: For a comparison: given an index key, the comparison compiled against the value of a side the key
    #: determines (e.g. the agreement's cap), else None.
    bind: Callable[[tuple[Any, ...]], Fn | None] | None = None
    #: For a list difference `a - b - [...]`: (a, b or None, the literal items), run as one pass.
    difference: tuple[Fn, Fn | None, frozenset[Any]] | None = None


def _const(value: Any, type_: str) -> Compiled:
    def get(_f: Facts) -> Any:
        return value

    return Compiled(get, type_, value is None, True, value, keyfn=lambda _k: value)


# --- key functions (see Compiled.keyfn) ------------------------------------------------------------
# Each gives UNKNOWN as soon as an operand it would evaluate first is UNKNOWN: that operand must then be
# evaluated per event (and may raise), so nothing after it is decided by the key alone.


def _key_unary(kf: KeyFn | None, op: Callable[[Any], Any]) -> KeyFn | None:
    if kf is None:
        return None
    return lambda k: v if (v := kf(k)) is UNKNOWN else op(v)


def _key_binary(lk: KeyFn | None, rk: KeyFn | None, op: Callable[[Any, Any], Any]) -> KeyFn | None:
    if lk is None or rk is None:
        return None

    def key(k: tuple[Any, ...]) -> Any:
        a = lk(k)
        if a is UNKNOWN:
            return UNKNOWN
        b = rk(k)
        return UNKNOWN if b is UNKNOWN else op(a, b)

    return key


def _key_order(lk: KeyFn | None, rk: KeyFn | None, op: Callable[[Any, Any], bool]) -> KeyFn | None:
    """An ordering's keyfn, with its null rule: a null side (known from the key) makes it false."""
    if lk is None:
        return None

    def key(k: tuple[Any, ...]) -> Any:
        a = lk(k)
        if a is UNKNOWN or a is None:
            return UNKNOWN if a is UNKNOWN else False
        b = UNKNOWN if rk is None else rk(k)
        if b is UNKNOWN or b is None:
            return UNKNOWN if b is UNKNOWN else False
        return op(a, b)

    return key


# --- functions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[str, ...]
    returns: str
    impl: Callable[..., Any]
    doc: str


def _subset(a: Any, b: Any) -> bool:
    s = set(b)
    return all(x in s for x in a)


def _intersects(a: Any, b: Any) -> bool:
    s = set(b)
    return any(x in s for x in a)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("len", ("list",), "int", len, "number of items of a list"),
        Function("any", ("list",), "bool", bool, "true if the list has at least one item"),
        Function("empty", ("list",), "bool", lambda x: not x, "true if the list has no item"),
        Function("intersects", ("list", "list"), "bool", _intersects, "true if the lists share an item"),
        Function("subset", ("list", "list"), "bool", _subset, "true if every item of the first is in the second"),
    )
}


def chain(fns: list[Fn], *, any_of: bool) -> Fn:
    """One closure for a whole `a and b and c` (or `or`) chain: fewer nested calls per evaluation."""
    if len(fns) == 2:
        a, b = fns
        if any_of:
            return lambda f: a(f) or b(f)
        return lambda f: a(f) and b(f)
    if len(fns) == 3:
        a, b, c = fns
        if any_of:
            return lambda f: a(f) or b(f) or c(f)
        return lambda f: a(f) and b(f) and c(f)
    if len(fns) == 4:
        a, b, c, d = fns
        if any_of:
            return lambda f: a(f) or b(f) or c(f) or d(f)
        return lambda f: a(f) and b(f) and c(f) and d(f)
    items = tuple(fns)
    if any_of:

        def any_chain(f: Facts) -> bool:
            return any(fn(f) for fn in items)

        return any_chain

    def all_chain(f: Facts) -> bool:
        return all(fn(f) for fn in items)

    return all_chain


def _key_chain(parts: tuple[Compiled, ...], any_of: bool) -> KeyFn | None:
    """The keyfn of an and/or chain: decided by the first operand the key decides as true (or) / false (and)."""
    items = tuple(p.keyfn for p in parts)
    if items[0] is None:
        return None

    def key(k: tuple[Any, ...]) -> Any:
        for fn in items:
            v = UNKNOWN if fn is None else fn(k)
            if v is UNKNOWN:
                return UNKNOWN
            if bool(v) is any_of:
                return any_of
        return not any_of

    return key


def _in(a: Any, b: Any) -> bool:
    return a in b


def _not_in(a: Any, b: Any) -> bool:
    return a not in b


def _false(_f: Facts) -> bool:
    return False


def _evaluated_then_false(fn: Fn) -> Fn:
    """`x < null`: false, but x is still evaluated (as when the literal is not null), so its errors show."""

    def evaluate(f: Facts) -> bool:
        fn(f)
        return False

    return evaluate


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
#: `a < b` is `b > a`: the operator with its operands swapped.
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _difference(a: Any, b: Any) -> tuple[Any, ...]:
    s = frozenset(b)
    return tuple([x for x in a if x not in s])


def _difference_fn(base: Fn, dynamic: Fn | None, fixed: frozenset[Any]) -> Fn:
    """`base - dynamic - [fixed...]`: the items of base in neither, in base's order, in one pass."""
    if dynamic is None:
        return lambda f: tuple([x for x in base(f) if x not in fixed])
    if not fixed:
        return lambda f: _difference(base(f), dynamic(f))

    def difference(f: Facts) -> tuple[Any, ...]:
        items = base(f)
        excluded = frozenset(dynamic(f))
        return tuple([x for x in items if x not in excluded and x not in fixed])

    return difference


def _order_const(lf: Fn, op: str, v: Any) -> Fn:
    """`x < v` for a constant v: false when x is null (or v is, after evaluating x, so its errors show)."""
    if v is None:
        return _evaluated_then_false(lf)
    if op == "<":
        return lambda f: (a := lf(f)) is not None and a < v
    if op == "<=":
        return lambda f: (a := lf(f)) is not None and a <= v
    if op == ">":
        return lambda f: (a := lf(f)) is not None and a > v
    return lambda f: (a := lf(f)) is not None and a >= v


def _known(kf: KeyFn | None, k: tuple[Any, ...]) -> Any:
    return UNKNOWN if kf is None else kf(k)


def _bind_equality(left: Compiled, right: Compiled, equal: bool) -> Callable[[tuple[Any, ...]], Fn | None]:
    lf, rf, lk, rk = left.fn, right.fn, left.keyfn, right.keyfn

    def bind(k: tuple[Any, ...]) -> Fn | None:
        if (v := _known(rk, k)) is not UNKNOWN:
            return (lambda f: lf(f) == v) if equal else (lambda f: lf(f) != v)
        if (v := _known(lk, k)) is not UNKNOWN:
            return (lambda f: v == rf(f)) if equal else (lambda f: v != rf(f))
        return None

    return bind


def _bind_order(left: Compiled, right: Compiled, op: str) -> Callable[[tuple[Any, ...]], Fn | None]:
    lf, rf, lk, rk = left.fn, right.fn, left.keyfn, right.keyfn

    def bind(k: tuple[Any, ...]) -> Fn | None:
        if (v := _known(rk, k)) is not UNKNOWN:
            return _order_const(lf, op, v)
        if (v := _known(lk, k)) is not UNKNOWN:  # `v < x` as `x > v`; a null v: false, x not evaluated
            return _false if v is None else _order_const(rf, _MIRRORED[op], v)
        return None

    return bind


def _bind_membership(left: Compiled, right: Compiled, negate: bool) -> Callable[[tuple[Any, ...]], Fn | None]:
    lf, rf, lk, rk = left.fn, right.fn, left.keyfn, right.keyfn

    def bind(k: tuple[Any, ...]) -> Fn | None:
        if (v := _known(rk, k)) is not UNKNOWN:
            return (lambda f: lf(f) not in v) if negate else (lambda f: lf(f) in v)
        if (v := _known(lk, k)) is not UNKNOWN:
            return (lambda f: v not in rf(f)) if negate else (lambda f: v in rf(f))
        return None

    return bind


def _close(name: str, known: Any) -> str:
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


# --- parser/compiler ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The facts a piece of rule text may name, and why the others are refused (e.g. agreement scope)."""

    facts: Mapping[str, Fact]
    why_not: str = ""


class TokenCursor:
    """A position in the tokens of one piece of rule text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)


# --- the syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Syntax:
    """A node of a condition's syntax tree: what the text says, before any name or type is resolved.

    The passes over it: `_Checker` (type-check) then `_Compiler` (closures, index keys), `rules diff`
    (rules/diff.py: implication between two versions) and the CEL translator (streams/bench/engine.py).
    Parentheses leave no node: they only shape the tree.
    """

    #: or, and (`args`: the operands, one chain as written), not (`args[0]`), cmp (`op`: ==, !=, <, <=,
    #: >, >=), in (`op`: in, not in), sub (binary `-`), call (`op`: the function), name (`op`: the fact
    #: name as written), lit (`value`, `op`: its type bool, int, str, list or null)
    kind: str
    #: Where an error about this node points: the operator's token, or the name's, or the literal's.
    pos: int
    op: str = ""
    args: tuple[Syntax, ...] = ()
    value: Any = None
    #: For and/or: where an error about each operand points (the first operand's start, then each
    #: operator token before the next operand).
    arg_pos: tuple[int, ...] = ()


class _Parser(TokenCursor):
    """Tokens -> Syntax: the grammar, literal decoding and the size limits; no names or types."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0

    def err(self, message: str, tok: _Tok | None = None) -> ConditionError:
        return ConditionError(message, offset=(tok or self.peek()).pos, text=self.text)

    def expect(self, kind: str, text: str) -> _Tok:
        if not self.at(kind, text):
            tok = self.peek()
            seen = "end of condition" if tok.kind == "eof" else repr(tok.text)
            raise self.err(f"expected '{text}', found {seen}")
        return self.take()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.err(f"expression nested deeper than {MAX_DEPTH} levels; split the rule or simplify it")

    # grammar: or < and < not < comparison < '-' < primary
    def parse(self) -> Syntax:
        node = self.or_()
        if not self.at("eof"):
            tok = self.peek()
            raise self.err(f"unexpected {tok.text!r} after a complete expression; join conditions with and/or")
        return node

    def or_(self) -> Syntax:
        self.enter()
        node = self.chain("or", self.and_)
        self.depth -= 1
        return node

    def and_(self) -> Syntax:
        return self.chain("and", self.not_)

    def chain(self, op: str, operand: Callable[[], Syntax]) -> Syntax:
        first = self.peek()
        parts, where = [operand()], [first.pos]
        while self.at("kw", op):
            where.append(self.take().pos)
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        return Syntax(op, first.pos, op, tuple(parts), arg_pos=tuple(where))

    def not_(self) -> Syntax:
        if self.at("kw", "not"):
            tok = self.take()
            self.enter()
            inner = self.not_()
            self.depth -= 1
            return Syntax("not", tok.pos, "not", (inner,))
        return self.comparison()

    def comparison(self) -> Syntax:
        left = self.additive()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return Syntax("cmp", tok.pos, tok.text, (left, self.additive()))
        if self.at("kw", "in") or (self.at("kw", "not") and self.peek(1).kind == "kw" and self.peek(1).text == "in"):
            negate = self.take().text == "not"
            if negate:
                self.take()
            return Syntax("in", tok.pos, "not in" if negate else "in", (left, self.additive()))
        return left

    def additive(self) -> Syntax:
        node = self.primary()
        while self.at("op", "-"):
            tok = self.take()
            node = Syntax("sub", tok.pos, "-", (node, self.primary()))
        return node

    def primary(self) -> Syntax:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            self.enter()
            inner = self.or_()
            self.depth -= 1
            self.expect("op", ")")
            return inner
        if tok.kind == "op" and tok.text == "[":
            return self.list_literal(tok)
        if tok.kind == "op" and tok.text == "-" and self.at("int"):
            return self.int_literal(self.take(), negative=True)
        if tok.kind == "int":
            return self.int_literal(tok)
        if tok.kind == "str":
            return Syntax("lit", tok.pos, "str", value=self.str_value(tok))
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Syntax("lit", tok.pos, "bool", value=tok.text == "true")
        if tok.kind == "kw" and tok.text == "null":
            return Syntax("lit", tok.pos, "null")
        if tok.kind == "name":
            if self.at("op", "("):
                return self.call(tok)
            return Syntax("name", tok.pos, tok.text)
        seen = "the end of the condition" if tok.kind == "eof" else repr(tok.text)
        raise self.err(f"expected a value (fact name, literal, list or function call), found {seen}", tok)

    def call(self, tok: _Tok) -> Syntax:
        func = FUNCTIONS.get(tok.text)
        if func is None:
            raise self.err(f"unknown function '{tok.text}'; the only functions are {', '.join(sorted(FUNCTIONS))}", tok)
        self.expect("op", "(")
        self.enter()
        args: list[Syntax] = []
        if not self.at("op", ")"):
            args.append(self.or_())
            while self.at("op", ","):
                self.take()
                args.append(self.or_())
        self.depth -= 1
        self.expect("op", ")")
        if len(args) != len(func.params):
            raise self.err(f"{func.name}() takes {len(func.params)} argument(s), got {len(args)}", tok)
        return Syntax("call", tok.pos, tok.text, tuple(args))

    def int_value(self, tok: _Tok, negative: bool = False) -> int:
        if len(tok.text) > MAX_INT_DIGITS:
            raise self.err(f"integer literal has {len(tok.text)} digits; the limit is {MAX_INT_DIGITS}", tok)
        value = int(tok.text)
        return -value if negative else value

    def int_literal(self, tok: _Tok, negative: bool = False) -> Syntax:
        return Syntax("lit", tok.pos, "int", value=self.int_value(tok, negative))

    def str_value(self, tok: _Tok) -> str:
        body = tok.text[1:-1]
        out: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch == "\\":
                nxt = body[i + 1] if i + 1 < len(body) else ""
                if nxt not in _ESCAPES:
                    raise self.err(f"unknown escape '\\{nxt}' in string; allowed: \\\\ \\\" \\' \\n \\t", tok)
                out.append(_ESCAPES[nxt])
                i += 2
            else:
                out.append(ch)
                i += 1
        value = "".join(out)
        if len(value) > MAX_STRING_CHARS:
            raise self.err(f"string literal has {len(value)} characters; the limit is {MAX_STRING_CHARS}", tok)
        return value

    def list_literal(self, open_tok: _Tok) -> Syntax:
        items: list[Any] = []
        if not self.at("op", "]"):
            while True:
                tok = self.take()
                if tok.kind == "str":
                    items.append(self.str_value(tok))
                elif tok.kind == "int":
                    items.append(self.int_value(tok))
                elif tok.kind == "op" and tok.text == "-" and self.at("int"):
                    items.append(self.int_value(self.take(), negative=True))
                elif tok.kind == "kw" and tok.text in ("true", "false", "null"):
                    items.append({"true": True, "false": False, "null": None}[tok.text])
                else:
                    raise self.err("list items must be literals (strings, integers, true, false, null)", tok)
                if len(items) > MAX_LIST_ITEMS:
                    raise self.err(f"list literal has more than {MAX_LIST_ITEMS} items", open_tok)
                if not self.at("op", ","):
                    break
                self.take()
        self.expect("op", "]")
        return Syntax("lit", open_tok.pos, "list", value=tuple(items))


def parse(text: str) -> Syntax:
    """The syntax tree of a condition or expression; raises ConditionError with the offset."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(
            f"condition has {len(text)} characters; the limit is {MAX_CONDITION_CHARS}", offset=0, text=text
        )
    if not text.strip():
        raise ConditionError("empty expression", offset=0, text=text)
    return _Parser(text).parse()


# --- the type-check pass: names resolved, types and catalogue codes checked ----------------------------------


@dataclass(frozen=True, slots=True)
class Typed:
    """A syntax node after the type-check pass: its static type and what its names and literals are."""

    syntax: Syntax
    type: str  # bool, int, str, list, null, any
    args: tuple[Typed, ...] = ()
    nullable: bool = False
    const: bool = False
    value: Any = None
    domain: str | None = None
    #: The fact the value comes from (kept through a list difference such as `fields.tier1 - [...]`).
    fact: str | None = None
    #: For a name: the fact it names.
    named: Fact | None = None


class _Checker:
    """Syntax -> Typed. Each node's operands first, then its own checks; errors point into the text."""

    def __init__(self, text: str, domains: Mapping[str, frozenset[str]], vocabulary: Vocabulary | None = None) -> None:
        self.text = text
        self.domains = domains
        self.vocabulary = vocabulary

    def err(self, message: str, pos: int) -> ConditionError:
        return ConditionError(message, offset=pos, text=self.text)

    def need(self, node: Typed, want: str, what: str, pos: int) -> None:
        if node.type not in (want, "any") and not (node.type == "null" and want != "bool"):
            raise self.err(f"{what} needs a {want}, got a {node.type}", pos)

    def check(self, node: Syntax) -> Typed:
        kind, pos = node.kind, node.pos
        if kind == "lit":
            return Typed(node, node.op, const=True, value=node.value)
        if kind == "name":
            return self.name(node)
        if kind in ("or", "and"):
            return self.chain(node)
        args = tuple(self.check(a) for a in node.args)
        if kind == "not":
            self.need(args[0], "bool", "'not'", pos)
        elif kind == "cmp":
            self.compare(pos, node.op, *args)
        elif kind == "in":
            self.membership(pos, *args)
        elif kind == "sub":
            return self.subtract(node, *args)
        else:
            return self.call(node, args)
        return Typed(node, "bool", args)

    def chain(self, node: Syntax) -> Typed:
        what = f"'{node.kind}'"
        first = self.check(node.args[0])
        parts = [first]
        for arg, pos in zip(node.args[1:], node.arg_pos[1:], strict=True):
            right = self.check(arg)
            self.need(first, "bool", what, node.arg_pos[0])
            self.need(right, "bool", what, pos)
            parts.append(right)
        return Typed(node, "bool", tuple(parts))

    def check_codes(self, a: Typed, b: Typed, pos: int) -> None:
        """A literal compared with a catalogue-coded fact must be a known code (typos fail at load)."""
        for fact, lit in ((a, b), (b, a)):
            if fact.domain is None or not lit.const or fact.domain not in self.domains:
                continue
            known = self.domains[fact.domain]
            values = lit.value if isinstance(lit.value, tuple) else (lit.value,)
            for v in values:
                if isinstance(v, str) and v not in known:
                    raise self.err(
                        f"unknown {fact.domain} code '{v}' (compared with {fact.fact}){_close(v, known)}", pos
                    )

    def compare(self, pos: int, op: str, left: Typed, right: Typed) -> None:
        self.check_codes(left, right, pos)
        if op in ("==", "!="):
            kinds = {left.type, right.type} - {"any", "null"}
            if len(kinds) > 1:
                raise self.err(f"'{op}' compares a {left.type} with a {right.type}; they can never be equal", pos)
            return
        self.need(left, "int", f"'{op}'", pos)
        self.need(right, "int", f"'{op}'", pos)

    def membership(self, pos: int, left: Typed, right: Typed) -> None:
        self.need(right, "list", "'in'", pos)
        if left.type == "list":
            raise self.err(
                "'in' tests one value against a list; to compare two lists use subset() or intersects()", pos
            )
        self.check_codes(left, right, pos)
        if right.const and right.value is None:
            raise self.err("'in' needs a list on its right, not null", pos)

    def subtract(self, node: Syntax, left: Typed, right: Typed) -> Typed:
        pos = node.pos
        if left.type == "list" or right.type == "list":
            self.need(left, "list", "'-' (list difference)", pos)
            self.need(right, "list", "'-' (list difference)", pos)
            self.check_codes(left, right, pos)
            if (left.const and left.value is None) or (right.const and right.value is None):
                raise self.err("'-' (list difference) needs lists on both sides, not null", pos)
            return Typed(node, "list", (left, right), domain=left.domain, fact=left.fact)
        self.need(left, "int", "'-'", pos)
        self.need(right, "int", "'-'", pos)
        return Typed(node, "int", (left, right), nullable=True)

    def name(self, node: Syntax) -> Typed:
        name = node.op
        if "__" in name or name.startswith("_"):
            raise self.err(
                f"name '{name}' is not allowed: names starting with '_' or containing '__' are never facts", node.pos
            )
        fact = FACTS.get(name) if self.vocabulary is None else self.vocabulary.facts.get(name)
        if fact is None and self.vocabulary is not None and name in FACTS:
            raise self.err(f"fact '{name}' cannot be used here: {self.vocabulary.why_not}", node.pos)
        if fact is None:
            raise self.err(
                f"unknown fact '{name}'{_close(name, FACTS)} (see rules/README.md for the vocabulary)", node.pos
            )
        return Typed(node, fact.type, nullable=fact.nullable, domain=fact.domain, fact=fact.name, named=fact)

    def call(self, node: Syntax, args: tuple[Typed, ...]) -> Typed:
        func = FUNCTIONS[node.op]
        for arg, want in zip(args, func.params, strict=True):
            self.need(arg, want, f"{func.name}()", node.pos)
        if len(args) == 2:
            self.check_codes(args[0], args[1], node.pos)
        return Typed(node, func.returns, args)


# --- the compile pass: closures, and the key functions the engine's index reads ----------------------------


class _Compiler:
    """Typed -> Compiled: each node's closure, with its index key function (`keyfn`, `bind`)."""

    def compile(self, node: Typed) -> Compiled:
        syntax = node.syntax
        kind = syntax.kind
        if kind == "lit":
            return _const(node.value, node.type)
        if kind == "name":
            return self.name(node)
        args = [self.compile(a) for a in node.args]
        if kind in ("or", "and"):
            return self.chain(kind, args)
        if kind == "not":
            inner = args[0]
            fn = inner.fn
            return Compiled(lambda f: not fn(f), "bool", keyfn=_key_unary(inner.keyfn, operator.not_), operand=inner)
        if kind == "cmp":
            return self.compare(syntax.op, *args)
        if kind == "in":
            return self.membership(*args, negate=syntax.op == "not in")
        if kind == "sub":
            return self.subtract(*args, listwise=node.type == "list")
        return self.call(FUNCTIONS[syntax.op], args)

    def chain(self, kind: str, parts: list[Compiled]) -> Compiled:
        if kind == "or":
            flat = tuple(q for p in parts for q in (p.disjuncts or (p,)))
            return Compiled(
                chain([p.fn for p in flat], any_of=True), "bool", disjuncts=flat, keyfn=_key_chain(flat, True)
            )
        flat = tuple(q for p in parts for q in (p.conjuncts or (p,)))
        return Compiled(
            chain([p.fn for p in flat], any_of=False), "bool", conjuncts=flat, keyfn=_key_chain(flat, False)
        )

    def compare(self, op: str, left: Compiled, right: Compiled) -> Compiled:
        if op in ("==", "!="):
            lf, rf = left.fn, right.fn
            if right.const:
                v = right.value
                fn: Fn = (lambda f: lf(f) == v) if op == "==" else (lambda f: lf(f) != v)
            elif op == "==":
                fn = lambda f: lf(f) == rf(f)  # noqa: E731
            else:
                fn = lambda f: lf(f) != rf(f)  # noqa: E731
            keyfn: KeyFn | None
            if right.const and right.value is None and (nk := INDEX_NULL.get(left.fact or "")) is not None:
                keyfn = nk if op == "==" else (lambda k: not nk(k))
            else:
                keyfn = _key_binary(left.keyfn, right.keyfn, operator.eq if op == "==" else operator.ne)
            bind = None if right.const else _bind_equality(left, right, op == "==")
            return Compiled(fn, "bool", keyfn=keyfn, bind=bind)
        keyfn = _key_order(left.keyfn, right.keyfn, _ORDERINGS[op])
        # A null side (e.g. no cap in the agreement) makes every ordering false rather than an error.
        if left.const and left.value is None:
            return Compiled(_false, "bool", keyfn=keyfn)
        if left.const and not right.const:  # `10 < x` as `x > 10`: one call fewer per evaluation
            return Compiled(_order_const(right.fn, _MIRRORED[op], left.value), "bool", keyfn=keyfn)
        lf, rf = left.fn, right.fn
        if right.const:
            return Compiled(_order_const(lf, op, right.value), "bool", keyfn=keyfn)
        if op == "<":
            fn = lambda f: (a := lf(f)) is not None and (b := rf(f)) is not None and a < b  # noqa: E731
        elif op == "<=":
            fn = lambda f: (a := lf(f)) is not None and (b := rf(f)) is not None and a <= b  # noqa: E731
        elif op == ">":
            fn = lambda f: (a := lf(f)) is not None and (b := rf(f)) is not None and a > b  # noqa: E731
        else:
            fn = lambda f: (a := lf(f)) is not None and (b := rf(f)) is not None and a >= b  # noqa: E731
        return Compiled(fn, "bool", keyfn=keyfn, bind=_bind_order(left, right, op))

    def membership(self, left: Compiled, right: Compiled, *, negate: bool) -> Compiled:
        lf, rf = left.fn, right.fn
        rk = right.keyfn
        if right.const:
            s = frozenset(right.value)
            fn: Fn = (lambda f: lf(f) not in s) if negate else (lambda f: lf(f) in s)
            rk = lambda _k: s  # noqa: E731  # the key functions test the same set
        elif negate:
            fn = lambda f: lf(f) not in rf(f)  # noqa: E731
        else:
            fn = lambda f: lf(f) in rf(f)  # noqa: E731
        keyfn = _key_binary(left.keyfn, rk, _not_in if negate else _in)
        bind = None if right.const else _bind_membership(left, right, negate)
        return Compiled(fn, "bool", keyfn=keyfn, bind=bind)

    def subtract(self, node: Compiled, right: Compiled, *, listwise: bool) -> Compiled:
        if listwise:
            parts: tuple[Fn, Fn | None, frozenset[Any]]
            if right.const and node.difference is not None:  # `a - b - ["x"]`: still one pass over a
                base, dynamic, fixed = node.difference
                parts = (base, dynamic, fixed | frozenset(right.value))
            elif right.const:
                parts = (node.fn, None, frozenset(right.value))
            else:
                parts = (node.fn, right.fn, frozenset())
            return Compiled(_difference_fn(*parts), "list", domain=node.domain, fact=node.fact, difference=parts)
        lf, rf = node.fn, right.fn
        return Compiled(
            lambda f, lf=lf, rf=rf: None if (a := lf(f)) is None or (b := rf(f)) is None else a - b,  # type: ignore[misc]
            "int",
            nullable=True,
        )

    def name(self, node: Typed) -> Compiled:
        fact = node.named
        assert fact is not None  # the checker resolved every name
        return Compiled(
            fact.getter,
            fact.type,
            fact.nullable,
            domain=fact.domain,
            fact=fact.name,
            nonempty=fact.nonempty,
            keyfn=INDEX_FACTS.get(fact.name) or INDEX_PARTIAL.get(fact.name),
        )

    def call(self, func: Function, args: list[Compiled]) -> Compiled:
        impl = func.impl
        if len(args) == 1:
            a = args[0].fn
            nonempty = args[0].nonempty
            # Emptiness from the key: INDEX_NONEMPTY for a fact itself (only a fact node has `nonempty`; a
            # difference such as `fields.tier1 - [...]` keeps the fact's name), else from the list's keyfn.
            fact_nk = INDEX_NONEMPTY.get(args[0].fact or "") if nonempty is not None else None
            nk = fact_nk or _key_unary(args[0].keyfn, bool)
            if func.name == "any":
                if nonempty is not None:
                    return Compiled(nonempty, "bool", keyfn=nk)
                return Compiled(lambda f: bool(a(f)), "bool", keyfn=nk)
            if func.name == "empty" and nonempty is not None:
                return Compiled(lambda f: not nonempty(f), "bool", keyfn=_key_unary(nk, operator.not_))
            return Compiled(lambda f: impl(a(f)), func.returns, keyfn=_key_unary(args[0].keyfn, impl))
        a, b = args[0].fn, args[1].fn
        return Compiled(lambda f: impl(a(f), b(f)), func.returns, keyfn=_key_binary(args[0].keyfn, args[1].keyfn, impl))


def compile_expression(
    text: str, domains: Mapping[str, frozenset[str]] | None = None, vocabulary: Vocabulary | None = None
) -> Compiled:
    """Compile an expression of any type (used for message placeholders); raises ConditionError."""
    typed = _Checker(text, domains or {}, vocabulary).check(parse(text))
    return _Compiler().compile(typed)


def compile_condition_node(
    text: str, domains: Mapping[str, frozenset[str]] | None = None, vocabulary: Vocabulary | None = None
) -> Compiled:
    """Compile a rule condition, keeping its structure (conjuncts, index guards) for the engine's index."""
    node = compile_expression(text, domains, vocabulary)
    if node.type not in ("bool", "any"):
        raise ConditionError(
            f"a condition must be true or false, but this is a {node.type}; compare it (==, in, any(...))",
            offset=0,
            text=text,
        )
    return node


def compile_condition(
    text: str, domains: Mapping[str, frozenset[str]] | None = None, vocabulary: Vocabulary | None = None
) -> Callable[[Facts], bool]:
    """Compile a rule condition to a closure `Facts -> bool`; raises ConditionError with the offset."""
    fn: Callable[[Facts], bool] = compile_condition_node(text, domains, vocabulary).fn
    return fn


# --- message templates -----------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """Render a fact value for people: lists comma-joined, null as 'none', booleans lower case."""
    if type(value) is str:  # the common case, first
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list | frozenset):
        return ", ".join(render_value(v) for v in value) if value else "none"
    return str(value)


class Template:
    """A message with `{expression}` placeholders (`{{` and `}}` are literal braces), compiled once.

    Rendering concatenates literal text with rendered values: no str.format, so no attribute access.
    """

    __slots__ = ("parts", "text")

    def __init__(self, text: str, parts: tuple[str | Fn, ...]) -> None:
        self.text = text
        self.parts = parts

    def render(self, facts: Facts) -> str:
        return "".join([p if isinstance(p, str) else render_value(p(facts)) for p in self.parts])


def compile_template(
    text: str, domains: Mapping[str, frozenset[str]] | None = None, vocabulary: Vocabulary | None = None
) -> Template:
    """Compile a message template; raises ConditionError at the offending placeholder."""
    parts: list[str | Fn] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            buf.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            buf.append("}")
            i += 2
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise ConditionError("unclosed '{' in message; write '{{' for a literal brace", offset=i, text=text)
            inner = text[i + 1 : end]
            try:
                node = compile_expression(inner, domains, vocabulary)
            except ConditionError as exc:
                raise ConditionError(
                    f"placeholder {{{inner}}}: {exc.message}", offset=i + 1 + exc.offset, text=text
                ) from None
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(node.fn)
            i = end + 1
        elif ch == "}":
            raise ConditionError("unmatched '}' in message; write '}}' for a literal brace", offset=i, text=text)
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append("".join(buf))
    return Template(text, tuple(parts))
