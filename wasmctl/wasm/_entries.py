"""Walking the entries of the sections wasmctl does not decode, by their encoded sizes.

A section's declared count must agree with its bytes: a type section that claims 0xFFFFFFFF
entries and holds none is malformed, and `wasm-tools validate` says so. This is not a
validator (no type checking, no instruction decoding): each entry is stepped over by its
encoding, so a count the bytes cannot hold, an entry that runs past the section's end, and
bytes left over after the last entry are all refused with the offset where reading failed.

Costs stay linear and small: function bodies and data segments are skipped by their size
prefixes, and a vector of u32 indexes that fills the rest of a section (the function
section) is checked with byte-level scans rather than one integer at a time.

Sources: the core binary format (WebAssembly spec §5.3-5.5, with the GC, function-references,
exception-handling, extended-const, memory64, custom-page-sizes and threads proposals' types).
"""

from __future__ import annotations

import re

from wasmctl.wasm._reader import Buffer, Reader

# Counts are bounded by the bytes they must fit in (every entry takes at least one byte);
# this limit only keeps the message readable for absurd values.
_ANY = 1 << 32

# Abstract heap types written as one byte (funcref 0x70, externref 0x6F, the GC and
# exception-handling shorthands from 0x69 to 0x74).
SHORT_REFTYPES = frozenset(range(0x69, 0x75))
NUMERIC_VALTYPES = frozenset((0x7F, 0x7E, 0x7D, 0x7C, 0x7B))
_NUMERIC_BYTES = bytes(sorted(NUMERIC_VALTYPES))
_PACKED_TYPES = frozenset((0x78, 0x77))  # i8, i16 (GC storage types)

# LEB128 bytes by class: `c` continues an integer, `t` ends one with at most four bits
# set, `T` ends one with more. A u32 is at most five bytes, its fifth holding four bits.
_LEB_CLASSES = bytes(b"t"[0] if i < 0x10 else b"T"[0] if i < 0x80 else b"c"[0] for i in range(256))


def reftype(r: Reader) -> None:
    """A reference type: a one-byte shorthand, or `(ref null? heaptype)`."""
    at = r.pos
    b = r.byte()
    if b in (0x63, 0x64):  # (ref null ht) / (ref ht)
        if r.peek() == 0x65:  # shared abstract heap type
            r.byte()
            r.byte()
        else:
            r.sleb(33)
    elif b not in SHORT_REFTYPES:
        raise r.error(f"bad reference type 0x{b:02x}", at)


def valtype(r: Reader) -> None:
    """A value type: a number or vector type, or a reference type."""
    if r.peek() in NUMERIC_VALTYPES:
        r.byte()
    else:
        reftype(r)


def limits(r: Reader) -> bool:
    """Table or memory limits; returns True for a shared memory."""
    at = r.pos
    flags = r.byte()
    if flags & ~0x0F:
        raise r.error(f"bad limits flags 0x{flags:02x}", at)
    bits = 64 if flags & 0x04 else 32
    r.uleb(bits)
    if flags & 0x01:
        r.uleb(bits)
    if flags & 0x08:  # custom-page-sizes: log2 of the page size
        r.uleb()
    return bool(flags & 0x02)


def global_mutability(r: Reader) -> None:
    """The mutability byte of a global type: 0x01 mutable, 0x02 shared (shared-everything)."""
    at = r.pos
    if r.byte() & ~0x03:
        raise r.error("bad global mutability flag", at)


def skip_const_expr(r: Reader) -> None:
    """Skip a constant expression up to its `end` (0x0b).

    Every instruction a constant expression may hold is known (spec, extended-const, GC,
    SIMD); anything else cannot be stepped over and is refused.
    """
    while True:
        at = r.pos
        op = r.byte()
        if op == 0x0B:
            return
        if op == 0x41:  # i32.const
            r.sleb(32)
        elif op in (0x23, 0xD2):  # global.get, ref.func
            r.uleb()
        elif op == 0x42:  # i64.const
            r.sleb(64)
        elif op == 0x43:  # f32.const
            r.skip(4)
        elif op == 0x44:  # f64.const
            r.skip(8)
        elif op == 0xD0:  # ref.null heaptype
            _heaptype(r)
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const add, sub, mul
            continue
        elif op == 0xFB:
            _gc_const_instruction(r, at)
        elif op == 0xFD:
            if r.uleb() != 0x0C:  # v128.const is SIMD's only constant instruction
                raise r.error("unsupported SIMD instruction in a constant expression", at)
            r.skip(16)
        else:
            raise r.error(f"unsupported opcode 0x{op:02x} in a constant expression", at)


def _heaptype(r: Reader) -> None:
    if r.peek() == 0x65:  # shared abstract heap type
        r.byte()
        r.byte()
    else:
        r.sleb(33)


def _gc_const_instruction(r: Reader, at: int) -> None:
    sub = r.uleb()
    if sub in (0x00, 0x01, 0x06, 0x07):  # struct.new(_default), array.new(_default) typeidx
        r.uleb()
    elif sub == 0x08:  # array.new_fixed typeidx n
        r.uleb()
        r.uleb()
    elif sub not in (0x1A, 0x1B, 0x1C):  # any.convert_extern, extern.convert_any, ref.i31
        raise r.error(f"unsupported GC instruction 0xfb {sub} in a constant expression", at)


def vector_count(r: Reader, what: str, min_item_size: int = 1) -> int:
    """A vector length the remaining bytes could hold (at `min_item_size` bytes an item)."""
    return r.count(what, _ANY, min_item_size)


def skip_u32s(r: Reader, n: int) -> None:
    """Step over `n` u32 LEB128 integers (indexes), one tight loop, no values kept."""
    data, pos, end = r.data, r.pos, r.end
    for _ in range(n):
        start = pos
        while True:
            if pos >= end:
                raise r.error("unexpected end of data in an integer", start)
            b = data[pos]
            pos += 1
            if b < 0x80:
                break
            if pos - start == 5:
                raise r.error("integer representation too long for u32", start)
        if pos - start == 5 and b > 0x0F:
            raise r.error("integer too large for u32", start)
    r.pos = pos


def u32s_fill_rest(r: Reader, n: int) -> bool:
    """True, and `r` moved to its end, when its rest is exactly `n` u32 integers.

    Checked at byte level: every integer ends in the one byte below 0x80, so the rest holds
    `n` integers when it has `n` such bytes and ends in one, none longer than five bytes
    nor too large. Otherwise `r` is left where it was, for the plain loop to locate the
    fault.
    """
    classes = bytes(r.data[r.pos : r.end]).translate(_LEB_CLASSES)
    if (
        len(classes) - classes.count(b"c") == n
        and not classes.endswith(b"c")
        and b"ccccc" not in classes
        and b"ccccT" not in classes
    ):
        r.pos = r.end
        return True
    return False


def expect_end(r: Reader, what: str) -> None:
    """The entries of a section must use up its bytes exactly."""
    if not r.at_end():
        raise r.error(f"{what} section has {r.remaining} bytes after its last entry")


# ---------------------------------------------------------------------------------------
# Sections


def type_section(r: Reader) -> None:
    """Recursion groups, subtypes and composite types (functions, structs, arrays)."""
    data, end = r.data, r.end
    for _ in range(vector_count(r, "types", 2)):
        if _plain_functype(r, data, end):
            continue
        if r.peek() == 0x4E:  # rec group
            r.byte()
            for _ in range(vector_count(r, "recursion group types", 2)):
                _subtype(r)
        else:
            _subtype(r)
    expect_end(r, "type")


def _plain_functype(r: Reader, data: Buffer, end: int) -> bool:
    """Step over a function type of fewer than 128 numeric parameters and results, the
    bulk of a module's types, in one slice each; False (nothing read) for anything else."""
    pos = r.pos
    if pos + 2 >= end or data[pos] != 0x60 or data[pos + 1] >= 0x80:
        return False
    results_at = pos + 2 + data[pos + 1]
    if results_at >= end or data[results_at] >= 0x80:
        return False
    after = results_at + 1 + data[results_at]
    if after > end:
        return False
    params = bytes(data[pos + 2 : results_at])
    results = bytes(data[results_at + 1 : after])
    if params.translate(None, _NUMERIC_BYTES) or results.translate(None, _NUMERIC_BYTES):
        return False
    r.pos = after
    return True


def _subtype(r: Reader) -> None:
    if r.peek() in (0x50, 0x4F):  # sub / sub final: supertypes, then the composite type
        r.byte()
        skip_u32s(r, vector_count(r, "supertypes"))
    _comptype(r)


def _comptype(r: Reader) -> None:
    at = r.pos
    form = r.byte()
    if form == 0x65:  # shared composite type (shared-everything-threads)
        at = r.pos
        form = r.byte()
    if form == 0x60:  # func: params, results
        for _ in range(vector_count(r, "parameters")):
            valtype(r)
        for _ in range(vector_count(r, "results")):
            valtype(r)
    elif form == 0x5F:  # struct: fields
        for _ in range(vector_count(r, "struct fields", 2)):
            _fieldtype(r)
    elif form == 0x5E:  # array: one field
        _fieldtype(r)
    elif form == 0x5D:  # cont (stack switching): a function type index
        r.sleb(33)
    else:
        raise r.error(f"unknown type form 0x{form:02x}", at)


def _fieldtype(r: Reader) -> None:
    if r.peek() in _PACKED_TYPES:
        r.byte()
    else:
        valtype(r)
    at = r.pos
    if r.byte() not in (0x00, 0x01):
        raise r.error("bad field mutability flag", at)


def function_section(r: Reader) -> int:
    """Type indexes, one per function defined; returns how many."""
    n = vector_count(r, "functions")
    if not u32s_fill_rest(r, n):
        skip_u32s(r, n)
        expect_end(r, "function")
    return n


def table_section(r: Reader) -> None:
    """Table types, each optionally with an initialising expression (0x40 0x00)."""
    for _ in range(vector_count(r, "tables", 2)):
        if r.peek() == 0x40:
            at = r.pos
            r.byte()
            if r.byte() != 0x00:
                raise r.error("bad table encoding (expected 0x40 0x00)", at)
            reftype(r)
            limits(r)
            skip_const_expr(r)
        else:
            reftype(r)
            limits(r)
    expect_end(r, "table")


def memory_section(r: Reader) -> None:
    """Memory limits."""
    for _ in range(vector_count(r, "memories", 2)):
        limits(r)
    expect_end(r, "memory")


def tag_section(r: Reader) -> None:
    """Exception tags: attribute 0x00 and a type index."""
    for _ in range(vector_count(r, "tags", 2)):
        at = r.pos
        if r.byte() != 0x00:
            raise r.error("bad tag attribute (expected 0x00)", at)
        r.uleb()
    expect_end(r, "tag")


def global_section(r: Reader) -> None:
    """Global types with their initialising constant expressions."""
    for _ in range(vector_count(r, "globals", 3)):
        valtype(r)
        global_mutability(r)
        skip_const_expr(r)
    expect_end(r, "global")


def element_section(r: Reader) -> None:
    """Element segments in their eight encodings (flags 0 to 7)."""
    n = vector_count(r, "element segments", 2)
    for i in range(n):
        at = r.pos
        flags = r.uleb()
        if flags > 7:
            raise r.error(f"bad element segment flags {flags}", at)
        if flags & 0b011 == 0b010:  # active with an explicit table index
            r.uleb()
        if not flags & 0b001:  # active: the offset expression
            skip_const_expr(r)
        if flags & 0b100:  # expressions of a reference type
            if flags & 0b011:
                reftype(r)
            for _ in range(vector_count(r, "element expressions")):
                skip_const_expr(r)
        else:  # function indexes, of elemkind funcref
            if flags & 0b011:
                kind_at = r.pos
                if r.byte() != 0x00:
                    raise r.error("bad element kind (expected 0x00, funcref)", kind_at)
            count = vector_count(r, "element function indexes")
            if i < n - 1 or not u32s_fill_rest(r, count):  # one big last segment is common
                skip_u32s(r, count)
    expect_end(r, "element")


def code_section(r: Reader) -> int:
    """Function bodies, each stepped over by its size prefix; returns how many.

    The one loop over every function of a module (CPython's has 89,000): the walk is plain
    integer work on the buffer, and only a section that does not add up is walked again,
    carefully, to name the offset where it goes wrong.
    """
    n = vector_count(r, "function bodies")
    if not _bodies_fill(r.data, r.pos, r.end, n):
        for _ in range(n):
            at = r.pos
            size = r.uleb()
            if size > r.remaining:
                raise r.error(
                    f"function body of {size} bytes runs past the end of the code section", at
                )
            r.pos += size
        expect_end(r, "code")
    r.pos = r.end
    return n


def _bodies_fill(data: Buffer, pos: int, end: int, n: int) -> bool:
    """True when `n` size-prefixed bodies from `pos` end exactly at `end`.

    Positions only grow, so a walk that strays past `end` cannot come back to it; sizes of
    four or more LEB bytes (bodies of 2 MiB and more) are left to the careful walk.
    """
    try:
        for _ in range(n):
            b = data[pos]
            if b < 0x80:
                pos += 1 + b
                continue
            c = data[pos + 1]
            if c < 0x80:
                pos += 2 + ((b & 0x7F) | c << 7)
                continue
            d = data[pos + 2]
            if d < 0x80:
                pos += 3 + ((b & 0x7F) | (c & 0x7F) << 7 | d << 14)
                continue
            return False
    except IndexError:
        return False
    return pos == end


def data_section(r: Reader) -> int:
    """Data segments (active, passive, active with a memory index); returns how many.

    Toolchains write many small segments (a Go module has a hundred thousand), nearly all
    `0x00 i32.const OFFSET end SIZE BYTES`: that form is matched in one step, the others
    are read field by field.
    """
    n = vector_count(r, "data segments")
    data, pos, end = r.data, r.pos, r.end
    match = _ACTIVE_I32_SEGMENT.match
    for _ in range(n):
        m = match(data, pos, end)
        if m is not None:
            size_at = m.start(1)
            head_end = m.end()
            if head_end - size_at == 1:
                size = data[size_at]
            else:
                r.pos = size_at
                size = r.uleb()
            if size > end - head_end:
                raise r.error(
                    f"data segment of {size} bytes runs past the end of the data section", pos
                )
            pos = head_end + size
            continue
        r.pos = pos
        flags = r.uleb()
        if flags == 2:
            r.uleb()
        if flags in (0, 2):
            skip_const_expr(r)
        elif flags != 1:
            raise r.error(f"bad data segment flags {flags}", pos)
        size = r.uleb()
        if size > r.remaining:
            raise r.error(f"data segment of {size} bytes runs past the end of the data section")
        pos = r.pos + size
    r.pos = pos
    expect_end(r, "data")
    return n


# `0x00 i32.const OFFSET end SIZE` with an offset of at most four LEB bytes (any value
# such a LEB holds fits s32) and the size's LEB in group 1; other forms take the slow path.
_ACTIVE_I32_SEGMENT = re.compile(
    rb"\x00\x41[\x80-\xff]{0,3}[\x00-\x7f]\x0b([\x80-\xff]{0,4}[\x00-\x7f])", re.DOTALL
)


def datacount_section(r: Reader) -> int:
    """The number of data segments announced ahead of the code section."""
    n = r.uleb()
    expect_end(r, "data count")
    return n
