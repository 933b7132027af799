// The operators of kernel-plan expressions over TensorRT's IExprBuilder (tpat::dimexpr, see
// tpat_dimexpr.h for the table and the int64 form): what generated getOutputShapes code calls.
// Constant operands fold through the int64 functions (so an expression of constants stays a
// constant); otherwise each operator maps onto IExprBuilder's operations:
//   add sub mul min max eq lt floordiv: kSUM kSUB kPROD kMIN kMAX kEQUAL kLESS kFLOOR_DIV;
//   floormod: x - floordiv(x, y) * y; truncdiv/truncmod: floordiv/floormod, as they agree on the
//   non-negative values dimensions have; gt ne le ge: from kLESS and kEQUAL; land lor lnot: over
//   ne(x, 0); select(c, t, e): c != 0 ? t : e when c is constant, else c01 * t + (1 - c01) * e;
//   shl/shr: need a constant shift in 0..62 (x * 2^s, floordiv(x, 2^s)).
// Each returns nullptr when an operand is nullptr or the operation cannot be built (a non-constant
// or out-of-range shift, a constant division by zero or overflow); `tpat generate` declines such
// expressions before it writes any code (PluginRenderer.checkBuildable), and generated code returns
// false from getOutputShapes on a nullptr.
#pragma once
#include "tpat_dimexpr.h"

#include "NvInferRuntime.h"

namespace tpat
{
namespace dimexpr
{
using E = nvinfer1::IDimensionExpr const*;
using B = nvinfer1::IExprBuilder;

namespace detail
{
inline bool isConst(E x) noexcept
{
    return x != nullptr && x->isConstant();
}
inline E op(B& b, nvinfer1::DimensionOperation o, E x, E y) noexcept
{
    if (x == nullptr || y == nullptr)
        return nullptr;
    return b.operation(o, *x, *y);
}
// f(bad, x, y) of the int64 table over two constants; nullptr when it reports `bad`.
template <class F>
inline E fold(B& b, F f, E x, E y) noexcept
{
    bool bad = false;
    int64_t v = f(bad, x->getConstantValue(), y->getConstantValue());
    return bad ? nullptr : b.constant(v);
}
}  // namespace detail

#define TPAT_DIMEXPR_FOLD2(name)                                                                                       \
    if (detail::isConst(x) && detail::isConst(y))                                                                      \
    return detail::fold(b, [](bool& bad, int64_t p, int64_t q) noexcept { return name(bad, p, q); }, x, y)

inline E lit(B& b, int64_t v) noexcept
{
    return b.constant(v);
}
inline E add(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(add);
    return detail::op(b, nvinfer1::DimensionOperation::kSUM, x, y);
}
inline E sub(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(sub);
    return detail::op(b, nvinfer1::DimensionOperation::kSUB, x, y);
}
inline E mul(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(mul);
    return detail::op(b, nvinfer1::DimensionOperation::kPROD, x, y);
}
inline E floordiv(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(floordiv);
    return detail::op(b, nvinfer1::DimensionOperation::kFLOOR_DIV, x, y);
}
inline E floormod(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(floormod);
    return sub(b, x, mul(b, floordiv(b, x, y), y));
}
inline E truncdiv(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(truncdiv);
    return floordiv(b, x, y);
}
inline E truncmod(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(truncmod);
    return floormod(b, x, y);
}
inline E min(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(min);
    return detail::op(b, nvinfer1::DimensionOperation::kMIN, x, y);
}
inline E max(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(max);
    return detail::op(b, nvinfer1::DimensionOperation::kMAX, x, y);
}
inline E shl(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(shl);
    if (!detail::isConst(y) || y->getConstantValue() < 0 || y->getConstantValue() > 62)
        return nullptr;
    return mul(b, x, b.constant(int64_t{1} << y->getConstantValue()));
}
inline E shr(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(shr);
    if (!detail::isConst(y) || y->getConstantValue() < 0 || y->getConstantValue() > 62)
        return nullptr;
    return floordiv(b, x, b.constant(int64_t{1} << y->getConstantValue()));
}
inline E eq(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(eq);
    return detail::op(b, nvinfer1::DimensionOperation::kEQUAL, x, y);
}
inline E lt(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(lt);
    return detail::op(b, nvinfer1::DimensionOperation::kLESS, x, y);
}
inline E ne(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(ne);
    return sub(b, b.constant(1), eq(b, x, y));
}
inline E le(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(le);
    return sub(b, b.constant(1), lt(b, y, x));
}
inline E gt(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(gt);
    return lt(b, y, x);
}
inline E ge(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(ge);
    return sub(b, b.constant(1), lt(b, x, y));
}
inline E land(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(land);
    return mul(b, ne(b, x, b.constant(0)), ne(b, y, b.constant(0)));
}
inline E lor(B& b, E x, E y) noexcept
{
    TPAT_DIMEXPR_FOLD2(lor);
    return max(b, ne(b, x, b.constant(0)), ne(b, y, b.constant(0)));
}
inline E lnot(B& b, E x) noexcept
{
    return eq(b, x, b.constant(0));
}
inline E select(B& b, E c, E t, E e) noexcept
{
    if (c == nullptr || t == nullptr || e == nullptr)
        return nullptr;
    if (c->isConstant())
        return c->getConstantValue() != 0 ? t : e;
    E c01 = ne(b, c, b.constant(0));
    return add(b, mul(b, c01, t), mul(b, sub(b, b.constant(1), c01), e));
}

#undef TPAT_DIMEXPR_FOLD2
}  // namespace dimexpr
}  // namespace tpat
