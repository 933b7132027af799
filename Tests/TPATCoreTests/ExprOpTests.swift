import Foundation
import Testing

@testable import TPATCore

/// The Expr operator table (ExprOp): every row against hand-written values, the schema's list,
/// both C++ renderings, and the C++ of tpat::dimexpr compiled and run over the same values (int64
/// checked form always; the IExprBuilder form against a fake builder when TensorRT's headers are
/// found, as GoldenSourceTests does).
@Suite(.serialized) struct ExprOpTests {
    /// Operands and the value the schema gives them; nil: no value (a division by zero).
    struct Case: Sendable, CustomStringConvertible {
        var args: [Int64], value: Int64?
        init(_ args: [Int64], _ value: Int64?) { self.args = args; self.value = value }
        var description: String { "\(args) -> \(value.map(String.init) ?? "none")" }
    }

    /// Written by hand from the schema's definitions, not computed.
    static let table: [ExprOp: [Case]] = [
        .add: [Case([7, 3], 10), Case([-7, 3], -4)],
        .sub: [Case([7, 3], 4), Case([3, 7], -4)],
        .mul: [Case([7, 3], 21), Case([-7, 3], -21)],
        .floordiv: [Case([7, 2], 3), Case([-7, 2], -4), Case([7, -2], -4), Case([7, 0], nil)],
        .floormod: [Case([7, 3], 1), Case([-7, 3], 2), Case([7, -3], -2), Case([7, 0], nil)],
        .truncdiv: [Case([7, 2], 3), Case([-7, 2], -3), Case([7, 0], nil)],
        .truncmod: [Case([7, 3], 1), Case([-7, 3], -1), Case([7, 0], nil)],
        .min: [Case([7, 3], 3), Case([-7, 3], -7)],
        .max: [Case([7, 3], 7), Case([-7, 3], 3)],
        .shl: [Case([3, 2], 12), Case([1, 0], 1)],
        .shr: [Case([12, 2], 3), Case([7, 1], 3)],
        .eq: [Case([3, 3], 1), Case([3, 4], 0)],
        .ne: [Case([3, 3], 0), Case([3, 4], 1)],
        .lt: [Case([3, 4], 1), Case([4, 3], 0), Case([3, 3], 0)],
        .le: [Case([3, 4], 1), Case([4, 3], 0), Case([3, 3], 1)],
        .gt: [Case([3, 4], 0), Case([4, 3], 1), Case([3, 3], 0)],
        .ge: [Case([3, 4], 0), Case([4, 3], 1), Case([3, 3], 1)],
        .and: [Case([2, 3], 1), Case([0, 3], 0), Case([2, 0], 0)],
        .or: [Case([0, 0], 0), Case([0, 3], 1), Case([2, 0], 1)],
        .not: [Case([0], 1), Case([5], 0)],
        .select: [Case([1, 5, 9], 5), Case([0, 5, 9], 9), Case([-2, 5, 9], 5)],
    ]

    static func expr(_ op: ExprOp, _ c: Case) -> Expr { .op(op, c.args.map { .int($0) }) }
    static func symbolic(_ op: ExprOp, _ c: Case) -> Expr { .op(op, c.args.indices.map { .sym("s\($0)") }) }

    @Test(arguments: ExprOp.allCases)
    func operatorRow(op: ExprOp) throws {
        let cases = try #require(Self.table[op], "ExprOp.\(op) has no cases in ExprOpTests.table")
        for c in cases {
            #expect(c.args.count == op.arity, "\(op) \(c)")
            #expect(op.apply(c.args) == c.value, "\(op) \(c)")
            // The plan's JSON form decodes to this row and evaluates the same with symbols bound.
            let json = #"{"op":"\#(op.rawValue)","args":[\#(c.args.indices.map { #"{"sym":"s\#($0)"}"# }.joined(separator: ","))]}"#
            let e = try JSONDecoder().decode(Expr.self, from: Data(json.utf8))
            #expect(e == Self.symbolic(op, c))
            let env = Dictionary(uniqueKeysWithValues: c.args.enumerated().map { ("s\($0)", $1) })
            #expect(e.evaluate(env) == c.value, "\(op) \(c)")
        }
        // One C++ function per operator, the context first, in both renderings.
        let e = Self.symbolic(op, cases[0])
        let args = cases[0].args.indices.map { "v\($0)" }
        let lazy = op.lazyOperands
        let checkedArgs = args.enumerated().map { lazy.contains($0) ? "[&] { return \($1); }" : $1 }
        #expect(e.cppChecked { "v" + $0.dropFirst() } == "dx::\(op.cppName)(\((["ovf"] + checkedArgs).joined(separator: ", ")))")
        #expect(
            e.cpp(context: "b", literal: { "dx::lit(b, \($0))" }, symbol: { "v" + $0.dropFirst() })
                == "dx::\(op.cppName)(\((["b"] + args).joined(separator: ", ")))")
        // A wrong argument count does not decode.
        let wrong = #"{"op":"\#(op.rawValue)","args":[\#(Array(repeating: #"{"int":1}"#, count: op.arity + 1).joined(separator: ","))]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Expr.self, from: Data(wrong.utf8)) }
    }

    @Test func schemaListsTheSameOperators() throws {
        let data = try Data(contentsOf: Repo.root.appendingPathComponent("schemas/kernel-plan.schema.json"))
        let schema = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let defs = try #require(schema["$defs"] as? [String: Any])
        let text = String(decoding: try JSONSerialization.data(withJSONObject: defs["Expr"] ?? [:]), as: UTF8.self)
        let names = try #require(text.firstMatch(of: /"enum":\[([^\]]*)\]/)).1
        let listed = names.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) }
        #expect(Set(listed) == Set(ExprOp.allCases.map(\.rawValue)))
        #expect(listed.count == ExprOp.allCases.count)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Expr.self, from: Data(#"{"op":"pow","args":[{"int":1},{"int":2}]}"#.utf8))
        }
    }

    /// What IExprBuilder cannot build is declined when the plugin is generated, with the reason.
    @Test func outputShapesIExprBuilderCannotBuildAreDeclined() throws {
        let symbols = ["n": (0, 0), "k": (0, 1)]
        func render(_ e: Expr) throws(TPATError) -> String { try PluginRenderer.exprBuilder(e, symbols: symbols, plugin: "P") }
        #expect(
            try render(.op(.shl, [.sym("n"), .op(.add, [.int(1), .int(2)])]))
                == "dx::shl(b, inputs[0].d[0], dx::add(b, dx::lit(b, 1), dx::lit(b, 2)))")
        #expect(try render(.op(.select, [.op(.lt, [.sym("n"), .sym("k")]), .sym("n"), .sym("k")])).hasPrefix("dx::select(b, dx::lt(b, "))
        for (e, reason) in [
            (Expr.op(.shl, [.sym("n"), .sym("k")]), "depends on the input dims"),
            (.op(.shr, [.sym("n"), .op(.add, [.sym("k"), .int(1)])]), "depends on the input dims"),
            (.op(.shl, [.sym("n"), .int(63)]), "outside 0...62"),
            (.op(.shr, [.sym("n"), .int(-1)]), "outside 0...62"),
            (.op(.add, [.sym("n"), .op(.floordiv, [.int(1), .int(0)])]), "division by zero"),
            (.op(.add, [.sym("n"), .sym("zz")]), "unknown symbol zz"),
        ] {
            #expect {
                _ = try render(e)
            } throws: { error in
                guard let error = error as? TPATError else { return false }
                return error.kind == .plan && error.message.contains(reason) && error.message.hasPrefix("plugin P: ")
            }
        }
    }

    // MARK: The C++ of tpat::dimexpr, compiled and run

    /// Extra int64 cases: checked overflow (no value) and lazy operands (no overflow reported from
    /// an operand that is not taken).
    static let checkedCases: [(Expr, Int64?)] = [
        (.op(.add, [.int(.max), .int(1)]), nil),
        (.op(.sub, [.int(.min), .int(1)]), nil),
        (.op(.mul, [.int(1 << 62), .int(2)]), nil),
        (.op(.floordiv, [.int(.min), .int(-1)]), nil),
        (.op(.truncdiv, [.int(.min), .int(-1)]), nil),
        (.op(.floormod, [.int(.min), .int(-1)]), 0),
        (.op(.shl, [.int(1), .int(63)]), nil),
        (.op(.shl, [.int(-1), .int(1)]), nil),
        (.op(.shr, [.int(1), .int(64)]), nil),
        (.op(.select, [.int(1), .int(5), .op(.floordiv, [.int(1), .int(0)])]), 5),
        (.op(.select, [.int(0), .op(.floordiv, [.int(1), .int(0)]), .int(9)]), 9),
        (.op(.select, [.int(1), .op(.floordiv, [.int(1), .int(0)]), .int(9)]), nil),
        (.op(.and, [.int(0), .op(.floordiv, [.int(1), .int(0)])]), 0),
        (.op(.or, [.int(1), .op(.floordiv, [.int(1), .int(0)])]), 1),
        (.op(.and, [.int(1), .op(.floordiv, [.int(1), .int(0)])]), nil),
    ]

    /// A C++ check of one rendered int64 expression: its value, or that it reports no value.
    static func int64Check(_ text: String, _ value: Int64?, _ what: String) -> String {
        let expect = value.map { "!ovf && v == INT64_C(\($0))" } ?? "ovf"
        return "    { bool ovf = false; int64_t v = \(text); (void) v; check(\(expect), \(cString(what))); }\n"
    }

    static func cString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static let harness = """
        #include <cstdio>
        static int failures = 0, checks = 0;
        static void check(bool ok, char const* what)
        {
            ++checks;
            if (!ok)
            {
                ++failures;
                std::printf("FAIL %s\\n", what);
            }
        }

        """

    /// Every row's cases through the checked int64 functions, with literal and with symbol
    /// operands (sym[k] holds the values), plus checkedCases.
    static func int64Program() -> String {
        var body = ""
        for op in ExprOp.allCases {
            for c in table[op] ?? [] {
                let syms = "int64_t const sym[] = {\(c.args.map { "INT64_C(\($0))" }.joined(separator: ", "))}; (void) sym;"
                body += "    {\n    \(syms)\n"
                body += int64Check(expr(op, c).cppChecked { _ in "0" }, c.value, "int64 \(op) \(c) literal")
                body += int64Check(symbolic(op, c).cppChecked { "sym[\($0.dropFirst())]" }, c.value, "int64 \(op) \(c) symbols")
                body += "    }\n"
            }
        }
        for (e, v) in checkedCases {
            body += int64Check(e.cppChecked { _ in "0" }, v, "int64 \(e)")
        }
        return "#include \"tpat_dimexpr.h\"\n" + harness + "int main()\n{\n    namespace dx = tpat::dimexpr;\n" + body
            + "    std::printf(\"%d checks, %d failures\\n\", checks, failures);\n    return failures != 0;\n}\n"
    }

    /// Every row's cases through tpat::dimexpr over IExprBuilder, rendered by PluginRenderer: with
    /// constant operands (folded; no value -> nullptr), and with input dims the fake builder marks
    /// not constant (for non-negative operands, the values dims have; a shift's amount stays
    /// constant, as generation requires).
    static func builderProgram() throws -> String {
        var body = ""
        for op in ExprOp.allCases {
            for c in table[op] ?? [] {
                // No value: generation declines it (outputShapesIExprBuilderCannotBuildAreDeclined); the
                // C++ alone gives nullptr.
                let constant =
                    c.value == nil
                    ? expr(op, c).cpp(context: "b", literal: { "dx::lit(b, \($0))" }, symbol: { $0 })
                    : try PluginRenderer.exprBuilder(expr(op, c), symbols: [:], plugin: "T")
                let expect = c.value.map { "e != nullptr && e->isConstant() && value(e) == INT64_C(\($0))" } ?? "e == nullptr"
                body += "    { E e = \(constant); check(\(expect), \(cString("builder \(op) \(c) constant"))); }\n"
                guard let v = c.value, c.args.allSatisfy({ $0 >= 0 }) else { continue }
                var args: [Expr] = c.args.indices.map { .sym("s\($0)") }
                for i in op.constantOperands { args[i] = .int(c.args[i]) }
                let symbols = Dictionary(uniqueKeysWithValues: c.args.indices.map { ("s\($0)", (0, $0)) })
                let text = try PluginRenderer.exprBuilder(.op(op, args), symbols: symbols, plugin: "T")
                let dims = c.args.enumerated().map { "inputs[0].d[\($0)] = b.dim(INT64_C(\($1)));" }.joined(separator: " ")
                body +=
                    "    { \(dims) E e = \(text); check(e != nullptr && value(e) == INT64_C(\(v)), \(cString("builder \(op) \(c) dims"))); }\n"
            }
        }
        return """
            #include "tpat_dimexpr_trt.h"
            #include <deque>
            \(harness)
            // A fake IExprBuilder over int64 values: constant() and dim() make expressions, operation()
            // computes TensorRT's DimensionOperation; a result is constant when both operands are.
            namespace
            {
            using E = nvinfer1::IDimensionExpr const*;
            struct ExprImpl : nvinfer1::apiv::VDimensionExpr
            {
                int64_t v = 0;
                bool c = false;
                bool isConstant() const override { return c; }
                int64_t getConstantValue() const override { return c ? v : INT64_MIN; }
                bool isSizeTensor() const override { return false; }
            };
            struct Expr : nvinfer1::IDimensionExpr
            {
                ExprImpl impl;
                Expr(int64_t v, bool c) { impl.v = v; impl.c = c; mImpl = &impl; }
            };
            int64_t value(E e) { return static_cast<Expr const*>(e)->impl.v; }
            int64_t floorDiv(int64_t a, int64_t b) { int64_t q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }
            struct BuilderImpl : nvinfer1::apiv::VExprBuilder
            {
                std::deque<Expr> pool;
                E make(int64_t v, bool c) { pool.emplace_back(v, c); return &pool.back(); }
                E constant(int64_t v) override { return make(v, true); }
                E operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& x, nvinfer1::IDimensionExpr const& y) override
                {
                    using D = nvinfer1::DimensionOperation;
                    int64_t a = value(&x), b = value(&y), r = 0;
                    switch (op)
                    {
                    case D::kSUM: r = a + b; break;
                    case D::kPROD: r = a * b; break;
                    case D::kMAX: r = a > b ? a : b; break;
                    case D::kMIN: r = a < b ? a : b; break;
                    case D::kSUB: r = a - b; break;
                    case D::kEQUAL: r = a == b; break;
                    case D::kLESS: r = a < b; break;
                    case D::kFLOOR_DIV: r = floorDiv(a, b); break;
                    case D::kCEIL_DIV: r = -floorDiv(-a, b); break;
                    }
                    return make(r, x.isConstant() && y.isConstant());
                }
                E declareSizeTensor(int32_t, nvinfer1::IDimensionExpr const&, nvinfer1::IDimensionExpr const&) override { return nullptr; }
            };
            struct Builder : nvinfer1::IExprBuilder
            {
                BuilderImpl impl;
                Builder() { mImpl = &impl; }
                E dim(int64_t v) { return impl.make(v, false); }
            };
            } // namespace

            int main()
            {
                namespace dx = tpat::dimexpr;
                Builder b;
                nvinfer1::DimsExprs inputs[1];
                inputs[0].nbDims = 3;
            \(body)    std::printf("%d checks, %d failures\\n", checks, failures);
                return failures != 0;
            }

            """
    }

    @Test func dimexprCompilesAndAgreesWithTheTable() async throws {
        let dir = try temporaryDirectory()
        let common = Repo.root.appendingPathComponent("plugin-runtime/common").path
        try Self.int64Program().write(to: dir.appendingPathComponent("int64.cpp"), atomically: true, encoding: .utf8)
        var r = try await Tool.run("g++", ["-std=c++17", "-Wall", "-Werror", "-I", common, "int64.cpp", "-o", "int64"], directory: dir)
        #expect(r.status == 0, "\(r.output.suffix(3000))")
        r = try await Tool.run(dir.appendingPathComponent("int64").path, [], directory: dir)
        #expect(r.status == 0 && r.output.contains(" 0 failures"), "\(r.output.suffix(3000))")

        let trt =
            ProcessInfo.processInfo.environment["TensorRT_ROOT"].map { URL(fileURLWithPath: $0).appendingPathComponent("include") }
            ?? Repo.root.appendingPathComponent(".trt/include")
        guard FileManager.default.fileExists(atPath: trt.appendingPathComponent("NvInfer.h").path),
            let cuda = CUDAToolkit.locate(projectRoot: Repo.root)
        else {
            print("note: TensorRT headers or CUDA not found (TensorRT_ROOT or .trt/include): the IExprBuilder form not compiled")
            return
        }
        try Self.builderProgram().write(to: dir.appendingPathComponent("builder.cpp"), atomically: true, encoding: .utf8)
        r = try await Tool.run(
            "g++",
            [
                "-std=c++17", "-Wall", "-Werror", "-I", common, "-isystem", trt.path,
                "-isystem", cuda.root.appendingPathComponent("include").path, "builder.cpp", "-o", "builder",
            ], directory: dir)
        #expect(r.status == 0, "\(r.output.suffix(3000))")
        r = try await Tool.run(dir.appendingPathComponent("builder").path, [], directory: dir)
        #expect(r.status == 0 && r.output.contains(" 0 failures"), "\(r.output.suffix(3000))")
    }
}
