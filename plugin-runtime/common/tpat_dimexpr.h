// The operators of kernel-plan expressions (schemas/kernel-plan.schema.json $defs.Expr; the Swift
// table is ExprOp in Sources/TPATCore/Planning/Expr.swift): one C++ function per operator, named
// as ExprOp.cppName, over the two kinds of value generated code computes with. The first argument
// is the context:
//   - `bool& bad`, over int64_t (this header, no TensorRT): the launchers' host code. Checked
//     arithmetic: an overflow, a division by zero or a shift out of range sets `bad` and yields 0,
//     so that the caller returns TPAT_BAD_DIMS instead of sizing a workspace or launching a grid
//     from a wrapped value.
//   - `nvinfer1::IExprBuilder&`, over IDimensionExpr const* (tpat_dimexpr_trt.h): the plugins'
//     getOutputShapes. Constant operands fold through the int64 functions below.
// Generated code calls them qualified (`namespace dx = tpat::dimexpr;`, `dx::add(ovf, a, b)`);
// Swift renders the calls (Expr.cpp) and tests every operator in both forms (DimExprTests).
#pragma once
#include <stdint.h>

namespace tpat
{
namespace dimexpr
{
inline int64_t lit(bool&, int64_t v) noexcept
{
    return v;
}
inline int64_t add(bool& bad, int64_t a, int64_t b) noexcept
{
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b))
        return bad = true, 0;
    return a + b;
}
inline int64_t sub(bool& bad, int64_t a, int64_t b) noexcept
{
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b))
        return bad = true, 0;
    return a - b;
}
inline int64_t mul(bool& bad, int64_t a, int64_t b) noexcept
{
    if (a == 0 || b == 0)
        return 0;
    bool over
        = a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a) : (b > 0 ? a < INT64_MIN / b : a < INT64_MAX / b);
    if (over)
        return bad = true, 0;
    return a * b;
}
// Floor division and modulo round toward -infinity (TVM's floordiv/floormod, Python's // and %).
inline int64_t floordiv(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b == 0 || (a == INT64_MIN && b == -1))
        return bad = true, 0;
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
inline int64_t floormod(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b == 0)
        return bad = true, 0;
    if (b == -1)
        return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
// Truncating division and modulo (C's / and %).
inline int64_t truncdiv(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b == 0 || (a == INT64_MIN && b == -1))
        return bad = true, 0;
    return a / b;
}
inline int64_t truncmod(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b == 0)
        return bad = true, 0;
    return b == -1 ? 0 : a % b;
}
inline int64_t min(bool&, int64_t a, int64_t b) noexcept
{
    return a < b ? a : b;
}
inline int64_t max(bool&, int64_t a, int64_t b) noexcept
{
    return a > b ? a : b;
}
// Shifts of a non-negative value by 0..62 (shl) or 0..63 (shr, arithmetic).
inline int64_t shl(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b < 0 || b > 62 || a < 0 || a > (INT64_MAX >> b))
        return bad = true, 0;
    return a << b;
}
inline int64_t shr(bool& bad, int64_t a, int64_t b) noexcept
{
    if (b < 0 || b > 63)
        return bad = true, 0;
    return a >> b;
}
// Comparisons and logic give 0 or 1; select(c, t, e) is t when c != 0.
inline int64_t eq(bool&, int64_t a, int64_t b) noexcept
{
    return a == b;
}
inline int64_t ne(bool&, int64_t a, int64_t b) noexcept
{
    return a != b;
}
inline int64_t lt(bool&, int64_t a, int64_t b) noexcept
{
    return a < b;
}
inline int64_t le(bool&, int64_t a, int64_t b) noexcept
{
    return a <= b;
}
inline int64_t gt(bool&, int64_t a, int64_t b) noexcept
{
    return a > b;
}
inline int64_t ge(bool&, int64_t a, int64_t b) noexcept
{
    return a >= b;
}
inline int64_t land(bool&, int64_t a, int64_t b) noexcept
{
    return a != 0 && b != 0;
}
inline int64_t lor(bool&, int64_t a, int64_t b) noexcept
{
    return a != 0 || b != 0;
}
inline int64_t lnot(bool&, int64_t a) noexcept
{
    return a == 0;
}
inline int64_t select(bool&, int64_t c, int64_t t, int64_t e) noexcept
{
    return c != 0 ? t : e;
}
// The same with lazy operands (callables returning int64_t), as the launchers pass them: the
// second operand of land/lor and the branch select does not take are not evaluated, so that their
// checked arithmetic cannot set `bad` (as C's && || ?: would not evaluate them).
template <class Y>
inline auto land(bool&, int64_t a, Y y) noexcept -> decltype(int64_t(y()))
{
    return a != 0 && y() != 0;
}
template <class Y>
inline auto lor(bool&, int64_t a, Y y) noexcept -> decltype(int64_t(y()))
{
    return a != 0 || y() != 0;
}
template <class T, class F>
inline auto select(bool&, int64_t c, T t, F e) noexcept -> decltype(int64_t(t()), int64_t(e()))
{
    return c != 0 ? t() : e();
}
}  // namespace dimexpr
}  // namespace tpat
