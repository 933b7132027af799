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

    /// C++ building an IDimensionExpr for `e` through tpat::dimexpr (common/tpat_dimexpr_trt.h);
    /// symbols read the inputs' DimsExprs. Every operator has a C++ form, but IExprBuilder has no
    /// shift: a shift whose amount depends on the input dims, or any part made only of constants
    /// that has no value (a division by zero, a shift out of 0...62), is declined here, with the
    /// reason, instead of yielding a plugin whose getOutputShapes fails in TensorRT.
    static func exprBuilder(_ e: Expr, symbols: [String: (Int, Int)], plugin: String) throws(TPATError) -> String {
        try checkBuildable(e, plugin: plugin)
        var unknown: String?
        let text = e.cpp(
            context: "b", literal: { "dx::lit(b, \($0))" },
            symbol: { s in
                guard let (i, d) = symbols[s] else { unknown = unknown ?? s; return "nullptr" }
                return "inputs[\(i)].d[\(d)]"
            })
        if let unknown { throw TPATError(.plan, "plugin \(plugin): output shape reads unknown symbol \(SafeText.comment(unknown))") }
        return text
    }

    /// Throws when tpat::dimexpr over IExprBuilder would return nullptr for `e` whatever the input dims.
    static func checkBuildable(_ e: Expr, plugin: String) throws(TPATError) {
        guard case let .op(op, args) = e else { return }
        for a in args { try checkBuildable(a, plugin: plugin) }
        if e.symbols.isEmpty, e.evaluate([:]) == nil {
            throw TPATError(.plan, "plugin \(plugin): output shape has '\(op.rawValue)' of constants with no value (a division by zero)")
        }
        for i in op.constantOperands {
            guard args[i].symbols.isEmpty, let v = args[i].evaluate([:]) else {
                throw TPATError(
                    .plan,
                    "plugin \(plugin): output shape uses '\(op.rawValue)' by an amount that depends on the input dims, which IExprBuilder cannot express"
                )
            }
            if !(0...62).contains(v) {
                throw TPATError(.plan, "plugin \(plugin): output shape uses '\(op.rawValue)' by \(v), outside 0...62")
            }
        }
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
        /// The size tensors (data-dependent outputs), declared before the output dims that read them.
        var sizes: [SizeView]
        var version: String, namespace: String, nbTactics: Int
    }
    struct ShapeView { var index: Int, rank: Int, dims: [DimView] }
    struct DimView { var tensor: Int, dim: Int, expr: String }
    /// Size output `output`, declared with `upper` (an IExprBuilder expression) as its bound.
    struct SizeView { var output: Int, upper: String }

    static func pluginView(_ source: PluginSource) throws(TPATError) -> PluginView {
        let plan = source.plan
        let symbols = Dictionary(plan.symbols.map { ($0.name, ($0.input, $0.dim)) }, uniquingKeysWith: { a, _ in a })
        var outputs: [ShapeView] = []
        // A size tensor is declared once (IExprBuilder::declareSizeTensor: opt = upper = the
        // first data-dependent output's bound); its expression is that output's dim.
        var sizes: [SizeView] = []
        for (j, t) in plan.outputs.enumerated() {
            guard let of = t.sizeOf, let k = of.first, let dd = plan.outputs[k].dataDependent else { continue }
            sizes.append(
                SizeView(output: j, upper: try exprBuilder(plan.outputs[k].shapeExpr[dd.dim], symbols: symbols, plugin: source.name)))
        }
        for (j, t) in plan.outputs.enumerated() {
            var dims: [DimView] = []
            for (d, e) in t.shapeExpr.enumerated() {
                if let dd = t.dataDependent, dd.dim == d {
                    dims.append(DimView(tensor: j, dim: d, expr: "size\(dd.sizeOutput); // data-dependent (size tensor \(dd.sizeOutput))"))
                } else {
                    dims.append(DimView(tensor: j, dim: d, expr: try exprBuilder(e, symbols: symbols, plugin: source.name)))
                }
            }
            outputs.append(ShapeView(index: j, rank: t.shapeExpr.count, dims: dims))
        }
        return PluginView(
            name: source.name, opType: SafeText.comment(plan.opType), covered: source.coveredNodes.count,
            inputTypes: try types(plan.inputs, plugin: source.name), outputTypes: try types(plan.outputs, plugin: source.name),
            nbInputs: plan.inputs.count, nbOutputs: plan.outputs.count,
            inputs: plan.inputs.enumerated().map { ShapeView(index: $0, rank: $1.shapeExpr.count, dims: []) }, outputs: outputs,
            sizes: sizes,
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
            /// Per output: null, or {"dim", "size_output"} (shape dim `dim` is a size tensor's value).
            var data_dependent: [KernelPlan.DataDependent?]?
            var library: String; var prefix: String; var num_tactics: Int
        }
        let spec = Spec(
            name: source.name, version: PluginSource.version, namespace: PluginSource.namespace,
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
