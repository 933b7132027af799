/// The operators of plan expressions: the one table of them in Swift. The schema lists the same
/// names (schemas/kernel-plan.schema.json $defs.Expr), and C++ implements each as
/// `tpat::dimexpr::<cppName>` (plugin-runtime/common/tpat_dimexpr.h over checked int64,
/// tpat_dimexpr_trt.h over TensorRT's IExprBuilder).
public enum ExprOp: String, CaseIterable, Codable, Sendable, Hashable {
    case add, sub, mul
    /// Rounding toward -infinity (Python's `//` and `%`).
    case floordiv, floormod
    /// Rounding toward zero (C's `/` and `%`).
    case truncdiv, truncmod
    case min, max
    /// Shifts; IExprBuilder needs the shift amount constant (`constantOperands`).
    case shl, shr
    /// Comparisons: 0 or 1.
    case eq, ne, lt, le, gt, ge
    /// Logic over "non-zero is true": 0 or 1.
    case and, or, not
    /// select(c, t, e): t when c != 0, else e.
    case select

    public var arity: Int {
        switch self {
        case .not: 1
        case .select: 3
        default: 2
        }
    }

    /// The function of tpat::dimexpr (`and`, `or`, `not` are C++ keywords).
    public var cppName: String {
        switch self {
        case .and: "land"
        case .or: "lor"
        case .not: "lnot"
        default: rawValue
        }
    }

    /// Operands an output shape can only have when they are constant (free of symbols): TensorRT's
    /// IExprBuilder has no shift, so a shift by a constant becomes a product or a floor division.
    public var constantOperands: [Int] {
        switch self {
        case .shl, .shr: [1]
        default: []
        }
    }

    /// Operands evaluated only when chosen (`select`'s branches, the second of `and`/`or`): the
    /// checked host code passes them as lambdas, so that an untaken branch cannot report an overflow.
    var lazyOperands: [Int] {
        switch self {
        case .select: [1, 2]
        case .and, .or: [1]
        default: []
        }
    }

    /// The value in signed 64-bit (wrapping; Swift's shifts), nil for a division by zero or the
    /// one quotient that does not fit (INT64_MIN / -1).
    public func apply(_ a: [Int64]) -> Int64? {
        switch self {
        case .add: return a[0] &+ a[1]
        case .sub: return a[0] &- a[1]
        case .mul: return a[0] &* a[1]
        case .floordiv:
            guard a[1] != 0, !(a[0] == .min && a[1] == -1) else { return nil }
            let q = a[0] / a[1]
            return (a[0] % a[1] != 0 && ((a[0] < 0) != (a[1] < 0))) ? q - 1 : q
        case .floormod:
            guard a[1] != 0 else { return nil }
            guard a[1] != -1 else { return 0 }
            let r = a[0] % a[1]
            return (r != 0 && ((r < 0) != (a[1] < 0))) ? r + a[1] : r
        case .truncdiv: return a[1] == 0 || (a[0] == .min && a[1] == -1) ? nil : a[0] / a[1]
        case .truncmod: return a[1] == 0 ? nil : a[1] == -1 ? 0 : a[0] % a[1]
        case .min: return Swift.min(a[0], a[1])
        case .max: return Swift.max(a[0], a[1])
        case .shl: return a[0] << a[1]
        case .shr: return a[0] >> a[1]
        case .eq: return a[0] == a[1] ? 1 : 0
        case .ne: return a[0] != a[1] ? 1 : 0
        case .lt: return a[0] < a[1] ? 1 : 0
        case .le: return a[0] <= a[1] ? 1 : 0
        case .gt: return a[0] > a[1] ? 1 : 0
        case .ge: return a[0] >= a[1] ? 1 : 0
        case .and: return (a[0] != 0 && a[1] != 0) ? 1 : 0
        case .or: return (a[0] != 0 || a[1] != 0) ? 1 : 0
        case .not: return a[0] == 0 ? 1 : 0
        case .select: return a[0] != 0 ? a[1] : a[2]
        }
    }
}

/// Integer expression of a kernel plan (grid sizes, scalar arguments, buffer sizes, output
/// shapes), over the plan's symbols. Evaluated in signed 64-bit, as the schema defines.
public indirect enum Expr: Codable, Sendable, Equatable, Hashable {
    case int(Int64)
    case sym(String)
    case op(ExprOp, [Expr])

    enum CodingKeys: String, CodingKey { case int, sym, op, args }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let v = try c.decodeIfPresent(Int64.self, forKey: .int) { self = .int(v); return }
        if let s = try c.decodeIfPresent(String.self, forKey: .sym) { self = .sym(s); return }
        let name = try c.decode(String.self, forKey: .op)
        let args = try c.decode([Expr].self, forKey: .args)
        guard let op = ExprOp(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: .op, in: c, debugDescription: "unknown expression op \(name)")
        }
        guard args.count == op.arity else {
            throw DecodingError.dataCorruptedError(
                forKey: .args, in: c, debugDescription: "\(name) takes \(op.arity) arguments, got \(args.count)")
        }
        self = .op(op, args)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .int(let v): try c.encode(v, forKey: .int)
        case .sym(let s): try c.encode(s, forKey: .sym)
        case let .op(op, args): try c.encode(op.rawValue, forKey: .op); try c.encode(args, forKey: .args)
        }
    }

    /// Symbols the expression reads.
    public var symbols: Set<String> {
        switch self {
        case .int: []
        case .sym(let s): [s]
        case .op(_, let args): args.reduce(into: Set<String>()) { $0.formUnion($1.symbols) }
        }
    }

    /// Evaluates with the given symbol values; nil when a symbol is unbound or a division is by zero.
    public func evaluate(_ env: [String: Int64]) -> Int64? {
        switch self {
        case .int(let v): return v
        case .sym(let s): return env[s]
        case let .op(op, args):
            let v = args.map { $0.evaluate(env) }
            guard !v.contains(where: { $0 == nil }) else { return nil }
            return op.apply(v.map { $0! })
        }
    }

    /// C++ through tpat::dimexpr (plugin-runtime/common/tpat_dimexpr.h), which generated code
    /// names `dx`: `dx::<op>(context, args...)`. `context` is the first argument of every call
    /// (`ovf`, a `bool` the checked int64 functions set on overflow, division by zero or a shift out
    /// of range; or `b`, the IExprBuilder); `literal` and `symbol` render the leaves. With `lazy`,
    /// the operands ExprOp.lazyOperands lists become `[&] { return ...; }`.
    public func cpp(context: String, lazy: Bool = false, literal: (Int64) -> String, symbol: (String) -> String) -> String {
        switch self {
        case .int(let v): return literal(v)
        case .sym(let s): return symbol(s)
        case let .op(op, args):
            let lazyArgs = lazy ? op.lazyOperands : []
            let a = args.enumerated().map { i, e in
                let text = e.cpp(context: context, lazy: lazy, literal: literal, symbol: symbol)
                return lazyArgs.contains(i) ? "[&] { return \(text); }" : text
            }
            return "dx::\(op.cppName)(\(([context] + a).joined(separator: ", ")))"
        }
    }

    /// The launchers' host arithmetic: int64 literals, checked operations that set the C++ `bool`
    /// lvalue `flag` (so that generated code can return TPAT_BAD_DIMS before it launches anything).
    public func cppChecked(_ symbol: (String) -> String, flag: String = "ovf") -> String {
        cpp(context: flag, lazy: true, literal: { $0 == Int64.min ? "INT64_MIN" : "INT64_C(\($0))" }, symbol: symbol)
    }
}
