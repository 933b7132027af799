import Foundation

/// Renders the TensorRT side of a plugin: its PluginSpec (types, output shapes through
/// IExprBuilder, launcher entry points) for the generic IPluginV3 in common/tpat_plugin.cpp, and
/// the JSON spec of the Python IPluginV3 (plugin-runtime/python/tpat_trt_plugin.py).
public struct PluginRenderer: Sendable {
    public let templates: TemplateSet

    public init(templates: TemplateSet) { self.templates = templates }

    func types(_ tensors: [KernelPlan.Tensor], plugin: String) throws(TPATError) -> String {
        var out: [String] = []
        for t in tensors {
            guard let n = TensorRTType.name(t.dtype) else {
                throw TPATError(.plan, "plugin \(plugin): TensorRT has no tensor type for \(t.dtype)")
            }
            out.append("nvinfer1::DataType::\(n)")
        }
        return out.joined(separator: ", ")
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

    public func pluginSource(_ source: PluginSource) throws(TPATError) -> String {
        let plan = source.plan
        let symbols = Dictionary(plan.symbols.map { ($0.name, ($0.input, $0.dim)) }, uniquingKeysWith: { a, _ in a })
        var shapes = ""
        for (i, t) in plan.inputs.enumerated() {
            shapes += "    if (inputs[\(i)].nbDims != \(t.shapeExpr.count))\n        return false;\n"
        }
        // A size tensor is declared once (IExprBuilder::declareSizeTensor: opt = upper = the
        // first data-dependent output's bound); its expression is that output's dim.
        for (j, t) in plan.outputs.enumerated() {
            guard let of = t.sizeOf, let k = of.first, let dd = plan.outputs[k].dataDependent else { continue }
            let upper = try Self.exprBuilder(plan.outputs[k].shapeExpr[dd.dim], symbols: symbols, plugin: source.name)
            shapes += "    nvinfer1::IDimensionExpr const* upper\(j) = \(upper);\n"
            shapes += "    if (upper\(j) == nullptr)\n        return false;\n"
            shapes += "    nvinfer1::IDimensionExpr const* size\(j) = b.declareSizeTensor(\(j), *upper\(j), *upper\(j));\n"
            shapes += "    if (size\(j) == nullptr)\n        return false;\n"
        }
        for (j, t) in plan.outputs.enumerated() {
            shapes += "    outputs[\(j)].nbDims = \(t.shapeExpr.count);\n"
            for (d, e) in t.shapeExpr.enumerated() {
                if let dd = t.dataDependent, dd.dim == d {
                    shapes += "    outputs[\(j)].d[\(d)] = size\(dd.sizeOutput); // data-dependent (size tensor \(dd.sizeOutput))\n"
                } else {
                    shapes += "    outputs[\(j)].d[\(d)] = \(try Self.exprBuilder(e, symbols: symbols, plugin: source.name));\n"
                }
            }
        }
        return try templates.render("plugin.cpp", [
            "name": source.name, "opType": SafeText.comment(plan.opType), "covered": source.coveredNodes.count,
            "inputTypes": try types(plan.inputs, plugin: source.name), "outputTypes": try types(plan.outputs, plugin: source.name),
            "nbInputs": plan.inputs.count, "nbOutputs": plan.outputs.count, "outputShapes": shapes,
            "version": PluginSource.version, "namespace": PluginSource.namespace, "nbTactics": source.tactics.count,
        ])
    }

    public func specsSource(_ sources: [PluginSource]) throws(TPATError) -> String {
        try templates.render("plugin_specs.cpp", ["plugins": sources.map { ["name": $0.name] }, "count": sources.count])
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
            /// Per output: null, or {"dim", "size_output"} (shape dim `dim` is a size tensor's value).
            var data_dependent: [KernelPlan.DataDependent?]?
            var library: String; var prefix: String; var num_tactics: Int
        }
        let spec = Spec(name: source.name, version: PluginSource.version, namespace: PluginSource.namespace,
                        input_dtypes: plan.inputs.map(\.dtype), output_dtypes: plan.outputs.map(\.dtype),
                        input_ranks: plan.inputs.map(\.shapeExpr.count),
                        output_shapes: plan.outputs.map { $0.shapeExpr.map(rename) },
                        data_dependent: plan.sizeOutputCount > 0 ? plan.outputs.map(\.dataDependent) : nil,
                        library: kernelsLibrary, prefix: "tpat_\(source.name)", num_tactics: source.tactics.count)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return try e.encode(spec) } catch { throw TPATError(.io, "cannot encode plugin spec: \(error)") }
    }
}
