/// Integer expression of a kernel plan (grid sizes, scalar arguments, buffer sizes, output
/// shapes), over the plan's symbols. Evaluated in signed 64-bit, as the schema defines.
public indirect enum Expr: Codable, Sendable, Equatable, Hashable {
    case int(Int64)
    case sym(String)
    case op(String, [Expr])

    enum CodingKeys: String, CodingKey { case int, sym, op, args }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let v = try c.decodeIfPresent(Int64.self, forKey: .int) { self = .int(v); return }
        if let s = try c.decodeIfPresent(String.self, forKey: .sym) { self = .sym(s); return }
        let op = try c.decode(String.self, forKey: .op)
        let args = try c.decode([Expr].self, forKey: .args)
        guard let arity = Expr.arity[op] else {
            throw DecodingError.dataCorruptedError(forKey: .op, in: c, debugDescription: "unknown expression op \(op)")
        }
        guard args.count == arity else {
            throw DecodingError.dataCorruptedError(forKey: .args, in: c, debugDescription: "\(op) takes \(arity) arguments, got \(args.count)")
        }
        self = .op(op, args)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .int(let v): try c.encode(v, forKey: .int)
        case .sym(let s): try c.encode(s, forKey: .sym)
        case let .op(op, args): try c.encode(op, forKey: .op); try c.encode(args, forKey: .args)
        }
    }

    static let arity: [String: Int] = [
        "add": 2, "sub": 2, "mul": 2, "floordiv": 2, "floormod": 2, "truncdiv": 2, "truncmod": 2,
        "min": 2, "max": 2, "shl": 2, "shr": 2, "eq": 2, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2,
        "and": 2, "or": 2, "not": 1, "select": 3,
    ]

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
            let a = v.map { $0! }
            switch op {
            case "add": return a[0] &+ a[1]
            case "sub": return a[0] &- a[1]
            case "mul": return a[0] &* a[1]
            case "floordiv":
                guard a[1] != 0 else { return nil }
                let q = a[0] / a[1]
                return (a[0] % a[1] != 0 && ((a[0] < 0) != (a[1] < 0))) ? q - 1 : q
            case "floormod":
                guard a[1] != 0 else { return nil }
                let r = a[0] % a[1]
                return (r != 0 && ((r < 0) != (a[1] < 0))) ? r + a[1] : r
            case "truncdiv": return a[1] == 0 ? nil : a[0] / a[1]
            case "truncmod": return a[1] == 0 ? nil : a[0] % a[1]
            case "min": return min(a[0], a[1])
            case "max": return max(a[0], a[1])
            case "shl": return a[0] << a[1]
            case "shr": return a[0] >> a[1]
            case "eq": return a[0] == a[1] ? 1 : 0
            case "ne": return a[0] != a[1] ? 1 : 0
            case "lt": return a[0] < a[1] ? 1 : 0
            case "le": return a[0] <= a[1] ? 1 : 0
            case "gt": return a[0] > a[1] ? 1 : 0
            case "ge": return a[0] >= a[1] ? 1 : 0
            case "and": return (a[0] != 0 && a[1] != 0) ? 1 : 0
            case "or": return (a[0] != 0 || a[1] != 0) ? 1 : 0
            case "not": return a[0] == 0 ? 1 : 0
            case "select": return a[0] != 0 ? a[1] : a[2]
            default: return nil
            }
        }
    }

    /// C++ expression over int64_t variables named by `symbol` (helpers from tpat_launcher_abi.h
    /// for floor division and modulo).
    public func cpp(_ symbol: (String) -> String) -> String { render(symbol, checked: nil) }

    /// The same with checked arithmetic (tpat_launcher_util.h): an overflow, a division by zero
    /// or a shift out of range sets the C++ `bool` lvalue `flag` and yields 0, so that generated
    /// host code can return TPAT_BAD_DIMS before it launches anything.
    public func cppChecked(_ symbol: (String) -> String, flag: String = "ovf") -> String { render(symbol, checked: flag) }

    static let checkedOps: Set<String> = ["add", "sub", "mul", "floordiv", "floormod", "truncdiv", "truncmod", "shl", "shr"]

    func render(_ symbol: (String) -> String, checked flag: String?) -> String {
        switch self {
        case .int(let v): return v == Int64.min ? "INT64_MIN" : "INT64_C(\(v))"
        case .sym(let s): return symbol(s)
        case let .op(op, args):
            let a = args.map { $0.render(symbol, checked: flag) }
            if let flag, Self.checkedOps.contains(op) { return "tpat_ck_\(op)(\(a[0]), \(a[1]), \(flag))" }
            switch op {
            case "add": return "(\(a[0]) + \(a[1]))"
            case "sub": return "(\(a[0]) - \(a[1]))"
            case "mul": return "(\(a[0]) * \(a[1]))"
            case "floordiv": return "tpat_floordiv(\(a[0]), \(a[1]))"
            case "floormod": return "tpat_floormod(\(a[0]), \(a[1]))"
            case "truncdiv": return "(\(a[0]) / \(a[1]))"
            case "truncmod": return "(\(a[0]) % \(a[1]))"
            case "min": return "tpat_min(\(a[0]), \(a[1]))"
            case "max": return "tpat_max(\(a[0]), \(a[1]))"
            case "shl": return "(\(a[0]) << \(a[1]))"
            case "shr": return "(\(a[0]) >> \(a[1]))"
            case "eq": return "(int64_t)(\(a[0]) == \(a[1]))"
            case "ne": return "(int64_t)(\(a[0]) != \(a[1]))"
            case "lt": return "(int64_t)(\(a[0]) < \(a[1]))"
            case "le": return "(int64_t)(\(a[0]) <= \(a[1]))"
            case "gt": return "(int64_t)(\(a[0]) > \(a[1]))"
            case "ge": return "(int64_t)(\(a[0]) >= \(a[1]))"
            case "and": return "(int64_t)((\(a[0]) != 0) && (\(a[1]) != 0))"
            case "or": return "(int64_t)((\(a[0]) != 0) || (\(a[1]) != 0))"
            case "not": return "(int64_t)(\(a[0]) == 0)"
            case "select": return "((\(a[0]) != 0) ? \(a[1]) : \(a[2]))"
            default: return "0"
            }
        }
    }
}
