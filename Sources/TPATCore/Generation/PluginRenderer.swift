import Foundation

/// Renders the TensorRT side of a plugin: its PluginSpec (types, output shapes through
/// IExprBuilder, launcher entry points) for the generic IPluginV3 in common/tpat_plugin.cpp, and
/// the JSON spec of the Python IPluginV3 (plugin-runtime/python/tpat_trt_plugin.py).
public struct PluginRenderer: Sendable {
    public let templates: TemplateSet

    public init(templates: TemplateSet) { self.templates = templates }

    /// TensorRT's type names (`kFLOAT`) of the tensors.
    static func types(_ tensors: [KernelPlan.Tensor], plugin: String) throws(TPATError) -> [String] {
        var out: [String] = []
        for t in tensors {
            guard let n = TensorRTType.name(t.dtype) else {
                throw TPATError(.plan, "plugin \(plugin): TensorRT has no tensor type for \(t.dtype)")
            }
            out.append(n)
        }
        return out
    }

    /// C++ building an IDimensionExpr for `e`; symbols read the inputs' DimsExprs.
    static func exprBuilder(_ e: Expr, symbols: [String: (Int, Int)], plugin: String) throws(TPATError) -> String {
        func r(_ e: Expr) throws(TPATError) -> String {
            switch e {
            case .int(let v): return "b.constant(\(v))"
            case .sym(let s):
                guard let (i, d) = symbols[s] else { throw TPATError(.plan, "plugin \(plugin): output shape reads unknown symbol \(s)") }
                return "inputs[\(i)].d[\(d)]"
            case let .op(op, args):
                func bin(_ kind: String, _ a: Expr, _ b: Expr) throws(TPATError) -> String {
                    "b.operation(DimensionOperation::\(kind), *\(try r(a)), *\(try r(b)))"
                }
                switch op {
                case "add": return try bin("kSUM", args[0], args[1])
                case "sub": return try bin("kSUB", args[0], args[1])
                case "mul": return try bin("kPROD", args[0], args[1])
                case "floordiv", "truncdiv": return try bin("kFLOOR_DIV", args[0], args[1])  // sizes are >= 0
                case "min": return try bin("kMIN", args[0], args[1])
                case "max": return try bin("kMAX", args[0], args[1])
                case "eq": return try bin("kEQUAL", args[0], args[1])
                case "lt": return try bin("kLESS", args[0], args[1])
                case "gt": return try bin("kLESS", args[1], args[0])
                case "floormod", "truncmod":
                    // a - floor(a / b) * b
                    return try r(.op("sub", [args[0], .op("mul", [.op("floordiv", [args[0], args[1]]), args[1]])]))
                default:
                    throw TPATError(.plan, "plugin \(plugin): output shape uses '\(op)', which IExprBuilder cannot express")
                }
            }
        }
        return try r(e)
    }

    /// The plugin's PluginSpec (plugin.cpp.mustache).
    public func pluginSource(_ source: PluginSource) throws(TPATError) -> String {
        try templates.render("plugin.cpp", try Self.pluginView(source))
    }

    /// The view of plugin.cpp.mustache; output dims arrive as rendered IExprBuilder expressions.
    struct PluginView {
        var name: String, opType: String, covered: Int
        var inputTypes: [String], outputTypes: [String]
        var nbInputs: Int, nbOutputs: Int
        var inputs: [ShapeView], outputs: [ShapeView]
        var version: String, namespace: String, nbTactics: Int
    }
    struct ShapeView { var index: Int, rank: Int, dims: [DimView] }
    struct DimView { var tensor: Int, dim: Int, expr: String }

    static func pluginView(_ source: PluginSource) throws(TPATError) -> PluginView {
        let plan = source.plan
        let symbols = Dictionary(plan.symbols.map { ($0.name, ($0.input, $0.dim)) }, uniquingKeysWith: { a, _ in a })
        var outputs: [ShapeView] = []
        for (j, t) in plan.outputs.enumerated() {
            var dims: [DimView] = []
            for (d, e) in t.shapeExpr.enumerated() {
                dims.append(DimView(tensor: j, dim: d, expr: try exprBuilder(e, symbols: symbols, plugin: source.name)))
            }
            outputs.append(ShapeView(index: j, rank: t.shapeExpr.count, dims: dims))
        }
        return PluginView(
            name: source.name, opType: SafeText.comment(plan.opType), covered: source.coveredNodes.count,
            inputTypes: try types(plan.inputs, plugin: source.name), outputTypes: try types(plan.outputs, plugin: source.name),
            nbInputs: plan.inputs.count, nbOutputs: plan.outputs.count,
            inputs: plan.inputs.enumerated().map { ShapeView(index: $0, rank: $1.shapeExpr.count, dims: []) }, outputs: outputs,
            version: PluginSource.version, namespace: PluginSource.namespace, nbTactics: source.tactics.count)
    }

    /// The list of the library's plugin specs (plugin_specs.cpp.mustache).
    public func specsSource(_ sources: [PluginSource]) throws(TPATError) -> String {
        struct Entry { var name: String }
        struct SpecsView { var plugins: [Entry], count: Int }
        return try templates.render("plugin_specs.cpp", SpecsView(plugins: sources.map { Entry(name: $0.name) }, count: sources.count))
    }

    /// The Python plugin's spec: types, output shapes as plan expressions over "in<i>_d<j>".
    public func pythonSpec(_ source: PluginSource, kernelsLibrary: String) throws(TPATError) -> Data {
        let plan = source.plan
        let symbols = Dictionary(plan.symbols.map { ($0.name, "in\($0.input)_d\($0.dim)") }, uniquingKeysWith: { a, _ in a })
        func rename(_ e: Expr) -> Expr {
            switch e {
            case .int: e
            case .sym(let s): .sym(symbols[s] ?? s)
            case let .op(op, args): .op(op, args.map(rename))
            }
        }
        struct Spec: Encodable {
            var name: String; var version: String; var namespace: String
            var input_dtypes: [String]; var output_dtypes: [String]
            var input_ranks: [Int]
            var output_shapes: [[Expr]]
            var library: String; var prefix: String; var num_tactics: Int
        }
        let spec = Spec(name: source.name, version: PluginSource.version, namespace: PluginSource.namespace,
                        input_dtypes: plan.inputs.map(\.dtype), output_dtypes: plan.outputs.map(\.dtype),
                        input_ranks: plan.inputs.map(\.shapeExpr.count),
                        output_shapes: plan.outputs.map { $0.shapeExpr.map(rename) },
                        library: kernelsLibrary, prefix: "tpat_\(source.name)", num_tactics: source.tactics.count)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return try e.encode(spec) } catch { throw TPATError(.io, "cannot encode plugin spec: \(error)") }
    }
}
