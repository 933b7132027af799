import Foundation
import Mustache

/// Renders a plugin's TVM kernels and its C-ABI launcher (no TensorRT) from its kernel plan.
public struct LauncherRenderer: Sendable {
    public let templates: TemplateSet

    public init(templates: TemplateSet) { self.templates = templates }

    /// TVM's CUDA source of one tactic, made private to its translation unit so that several
    /// plugins and tactics link into one library: kernels become `static`, and everything else
    /// (TVM's fp16 helpers such as `max(half, half)` are ordinary host+device functions) goes into
    /// a namespace of the tactic's own. The headers TVM includes are included first, outside it,
    /// so that TVM's own `#include` lines inside the namespace are no-ops (include guards).
    public func kernels(_ source: PluginSource, tactic k: Int) throws(TPATError) -> String {
        try templates.render("kernels.cuh", Self.kernelsView(source, tactic: k))
    }

    /// The view of kernels.cuh.mustache.
    struct KernelsView {
        var name: String, tvmVersion: String, sm: String, tactic: Int
        /// `#include` lines of TVM's source that nvcc sees.
        var includes: [String]
        var namespace: String
        /// TVM's source with its kernels made `static`.
        var body: String
    }

    static func kernelsView(_ source: PluginSource, tactic k: Int) -> KernelsView {
        let plan = source.tactics[k]
        let body = plan.cudaSource
            .replacingOccurrences(of: "extern \"C\" __global__", with: "static __global__")
            .replacingOccurrences(of: "extern \"C\" __device__", with: "static __device__")
        return KernelsView(
            name: source.name, tvmVersion: SafeText.comment(plan.tvmVersion), sm: SafeText.comment(plan.target.sm),
            tactic: k, includes: hostIncludes(body), namespace: namespace(source, tactic: k), body: body)
    }

    static func namespace(_ source: PluginSource, tactic k: Int) -> String { "tpat_\(source.name)_t\(k)_kernels" }

    /// The `#include` lines of a CUDA source that an nvcc build sees: those inside an
    /// `#ifdef __CUDACC_RTC__` branch (NVRTC only) are left out.
    static func hostIncludes(_ source: String) -> [String] {
        var stack: [Bool] = []  // per open conditional: is this branch NVRTC-only?
        var includes: [String] = []
        for raw in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("#") else { continue }
            let directive = line.dropFirst().trimmingCharacters(in: .whitespaces)
            if directive.hasPrefix("if") {
                stack.append(
                    directive.hasPrefix("ifdef") && directive.contains("__CUDACC_RTC__")
                        || directive.hasPrefix("if defined(__CUDACC_RTC__)"))
            } else if directive.hasPrefix("else") || directive.hasPrefix("elif") {
                if !stack.isEmpty { stack[stack.count - 1] = false }
            } else if directive.hasPrefix("endif") {
                _ = stack.popLast()
            } else if directive.hasPrefix("include"), !stack.contains(true), !includes.contains(line) {
                includes.append(line)
            }
        }
        return includes
    }

    static func function(_ source: PluginSource, tactic k: Int) -> String { "tpat_\(source.name)_t\(k)" }

    /// The plugin's C ABI: dispatches to its tactics (launcher.cu.mustache).
    public func launcher(_ source: PluginSource) throws(TPATError) -> String {
        try templates.render("launcher.cu", Self.launcherView(source))
    }

    struct LauncherView {
        var name: String, opType: String, count: Int
        /// The function stem of tactic 0 (its output dims serve every tactic).
        var first: String
        var nbOutputs: Int
        /// Per output, C lists: its TPAT_OUTPUT_* kind, its size output (-1: none), its data-dependent dim (-1: none).
        var outputKinds: String, sizeOutputs: String, dynamicDims: String
        var tactics: [TacticEntry]
    }
    struct TacticEntry { var index: Int, fn: String, lowering: String, kernels: Int }

    static func launcherView(_ source: PluginSource) -> LauncherView {
        LauncherView(
            name: source.name, opType: SafeText.comment(source.plan.opType), count: source.tactics.count,
            first: function(source, tactic: 0),
            nbOutputs: source.plan.outputs.count,
            outputKinds: source.plan.outputs.map {
                $0.sizeOf != nil ? "TPAT_OUTPUT_SIZE" : $0.dataDependent != nil ? "TPAT_OUTPUT_DATA_DEPENDENT" : "TPAT_OUTPUT_FIXED"
            }.joined(separator: ", "),
            sizeOutputs: source.plan.outputs.enumerated().map { j, t in String(t.sizeOf != nil ? j : t.dataDependent?.sizeOutput ?? -1) }
                .joined(separator: ", "),
            dynamicDims: source.plan.outputs.map { String($0.dataDependent?.dim ?? -1) }.joined(separator: ", "),
            tactics: source.tactics.enumerated().map { k, plan in
                TacticEntry(
                    index: k, fn: function(source, tactic: k), lowering: SafeText.comment(PluginSource.lowering(of: plan)),
                    kernels: plan.kernels.count)
            })
    }

    /// The launcher's header (launcher.h.mustache).
    public func header(_ source: PluginSource) throws(TPATError) -> String {
        struct HeaderView { var name: String, opType: String }
        return try templates.render("launcher.h", HeaderView(name: source.name, opType: SafeText.comment(source.plan.opType)))
    }

    /// One tactic: its kernel plan as host code (symbols from dims, dim checks, constants,
    /// workspace layout, the launch sequence): tactic.cu.mustache and its partials (launch,
    /// launch_checks, loop, copy, copy_checks, step, nested_step, inline_pointer) over `TacticView`.
    public func tactic(_ source: PluginSource, tactic k: Int) throws(TPATError) -> String {
        try templates.render("tactic.cu", try Self.tacticView(source, tactic: k))
    }

    // MARK: View models of tactic.cu.mustache. Expressions arrive rendered (Expr.cppChecked); the
    // C++ around them is in the templates.

    struct TacticView {
        var name: String, opType: String, tvmVersion: String, sm: String, tactic: Int, fn: String
        var lowering: String, kernelNamespace: String
        var inputs: [TensorView], outputs: [TensorView]
        var symbols: [SymbolView]
        var constants: [ConstantView]
        var constantSlots: Int, hasConstants: Bool, symbolSlots: Int
        var workspaceBytes: String, alignment: Int
        var buffers: [BufferView]
        /// Top-level steps: their checks run before the first launch (tactic.cu), loops and the
        /// steps inside them check just before they run (nested_step).
        var steps: [StepView]
    }
    struct TensorView { var index: Int, dtype: String, shape: String, rank: Int, dims: [DimView] }
    /// Dim `dim` of tensor `tensor` and the plan's expression for it.
    struct DimView { var tensor: Int, dim: Int, expr: String }
    struct SymbolView { var index: Int, input: Int, dim: Int }
    /// `bytes`: the constant's bytes as a C initializer list's items ("0" when empty).
    struct ConstantView { var id: Int, dtype: String, shape: String, byteCount: Int, bytes: String }
    struct BufferView { var id: Int, offset: String, bytes: String }
    /// One step; exactly one of launch, copy, loop is set (the templates test them with `.name`,
    /// so that an unset one is not looked up in the enclosing views). `pad`: the indentation of
    /// the step (of its braces when nested); `inner`: of its statements (a top-level step has no
    /// braces: both are one level). Explicit, because swift-mustache 2.1.1 does not indent the
    /// first line of a section's second and later items inside an indented partial.
    struct StepView {
        var pad: String, inner: String
        var launch: LaunchView? = nil; var copy: CopyView? = nil; var loop: LoopView? = nil
    }
    /// Launch `n` (g<n>, b<n>, smem<n>, a<n>_<arg>): three grid and block dims, the scalar
    /// arguments (checked to fit their C type), every argument in order.
    struct LaunchView {
        var n: Int, kernel: String, grid: [String], block: [String], smem: String
        /// The kernel may ask for more than 48 KiB of dynamic shared memory (smem is not the literal 0).
        var dynamicSmem: Bool
        var scalars: [ScalarView], args: [ArgView]
    }
    struct ScalarView { var index: Int, expr: String, cType: String }
    struct ArgView { var index: Int; var scalar: ScalarType? = nil; var pointer: PointerView? = nil }
    struct ScalarType { var cType: String }
    /// A device pointer: exactly one field set (inline_pointer.mustache).
    struct PointerView { var input: Int? = nil; var output: Int? = nil; var buffer: Int? = nil; var constant: Int? = nil }
    struct CopyView { var n: Int, bytes: String, src: PointerView, dst: PointerView }
    /// A plan loop over `variable` (the C++ name loop_<k>), its body's steps.
    struct LoopView { var variable: String, begin: String, extent: String, body: [StepView] }

    static func tacticView(_ source: PluginSource, tactic k: Int) throws(TPATError) -> TacticView {
        let plan = source.tactics[k]
        // Kernel names become C++ identifiers in the launch code.
        if let bad = plan.kernels.map(\.name).first(where: { !SafeText.isIdentifier($0) }) {
            throw TPATError(.plan, "plugin \(source.name): kernel name '\(SafeText.comment(bad))' is not a C identifier")
        }
        let symbolIndex = Dictionary(plan.symbols.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        var loopVars: [String: String] = [:]
        var unknownSymbol = false
        func sym(_ name: String) -> String {
            if let k = symbolIndex[name] { return "sym[\(k)]" }
            if let v = loopVars[name] { return v }
            unknownSymbol = true
            return "TPAT_UNKNOWN_SYMBOL"
        }
        // All host arithmetic is checked (Expr.cppChecked): a wrapped value makes the call return
        // TPAT_BAD_DIMS.
        func ck(_ e: Expr) -> String { e.cppChecked(sym) }
        func tensor(_ t: KernelPlan.Tensor, _ i: Int) -> TensorView {
            TensorView(
                index: i, dtype: SafeText.comment(t.dtype),
                shape: SafeText.comment(
                    t.shape.map { if case .int(let v) = $0 { String(v) } else if case .text(let s) = $0 { s } else { "?" } }.joined(
                        separator: ",")),
                rank: t.shapeExpr.count, dims: t.shapeExpr.enumerated().map { DimView(tensor: i, dim: $0, expr: ck($1)) })
        }
        let kernels = Dictionary(plan.kernels.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func pointer(_ b: KernelPlan.Binding) -> PointerView {
            switch b {
            case .input(let i): PointerView(input: i)
            case .output(let i): PointerView(output: i)
            case .buffer(let id): PointerView(buffer: id)
            case .constant(let id): PointerView(constant: id)
            case .scalar: PointerView()
            }
        }
        var unknownKernel: String?
        var launchCount = 0
        func steps(_ list: [KernelPlan.Step], depth: Int) -> [StepView] {
            var out: [StepView] = []
            let pad = String(repeating: "    ", count: depth + 1)
            let inner = depth == 0 ? pad : pad + "    "
            for step in list {
                switch step {
                case let .launch(kernel, args, grid, block, smem):
                    guard let params = kernels[kernel]?.params else { unknownKernel = kernel; continue }
                    let n = launchCount
                    launchCount += 1
                    let g = (0..<3).map { grid.indices.contains($0) ? ck(grid[$0]) : ck(.int(1)) }
                    let bl = (0..<3).map { block.indices.contains($0) ? ck(block[$0]) : ck(.int(1)) }
                    let smemText = ck(smem)
                    var scalars: [ScalarView] = [], argViews: [ArgView] = []
                    for (a, (arg, param)) in zip(args, params).enumerated() {
                        if case .scalar(let e) = arg {
                            let cType = TensorRTType.cType(param.type)
                            scalars.append(ScalarView(index: a, expr: ck(e), cType: cType))
                            argViews.append(ArgView(index: a, scalar: ScalarType(cType: cType)))
                        } else {
                            argViews.append(ArgView(index: a, pointer: pointer(arg)))
                        }
                    }
                    out.append(
                        StepView(
                            pad: pad, inner: inner,
                            launch: LaunchView(
                                n: n, kernel: kernel, grid: g, block: bl, smem: smemText,
                                dynamicSmem: smem != .int(0), scalars: scalars, args: argViews)))
                case let .loop(variable, begin, extent, body):
                    let v = "loop_\(loopVars.count)"
                    loopVars[variable] = v
                    let b = ck(begin), e = ck(extent)
                    out.append(
                        StepView(
                            pad: pad, inner: inner, loop: LoopView(variable: v, begin: b, extent: e, body: steps(body, depth: depth + 1))))
                case let .copy(src, dst, bytes):
                    let n = launchCount
                    launchCount += 1
                    out.append(
                        StepView(pad: pad, inner: inner, copy: CopyView(n: n, bytes: ck(bytes), src: pointer(src), dst: pointer(dst))))
                }
            }
            return out
        }
        let inputs = plan.inputs.enumerated().map { tensor($1, $0) }
        let outputs = plan.outputs.enumerated().map { tensor($1, $0) }
        // Workspace buffers: offsets computed once, each checked to lie inside the workspace.
        let buffers = plan.buffers.map { BufferView(id: $0.id, offset: ck($0.offset), bytes: ck($0.bytes)) }
        let stepViews = steps(plan.steps, depth: 0)
        if let unknownKernel {
            throw TPATError(
                .plan, "plugin \(source.name): the plan launches kernel '\(SafeText.comment(unknownKernel))', which it does not define")
        }
        let workspace = ck(plan.workspaceBytes)
        if unknownSymbol {
            throw TPATError(.plan, "plugin \(source.name): the plan uses a symbol it does not define")
        }
        let constants = plan.constants.map { c in
            let bytes = Data(base64Encoded: c.data) ?? Data()
            return ConstantView(
                id: c.id, dtype: SafeText.comment(c.dtype), shape: c.shape.map(String.init).joined(separator: ","),
                byteCount: max(1, bytes.count), bytes: bytes.isEmpty ? "0" : bytes.map { String($0) }.joined(separator: ","))
        }
        return TacticView(
            name: source.name, opType: SafeText.comment(plan.opType), tvmVersion: SafeText.comment(plan.tvmVersion),
            sm: SafeText.comment(plan.target.sm), tactic: k, fn: function(source, tactic: k),
            lowering: SafeText.comment(PluginSource.lowering(of: plan)), kernelNamespace: namespace(source, tactic: k),
            inputs: inputs, outputs: outputs,
            symbols: plan.symbols.enumerated().map { SymbolView(index: $0, input: $1.input, dim: $1.dim) },
            constants: constants, constantSlots: max(1, (plan.constants.map(\.id).max() ?? -1) + 1),
            hasConstants: !plan.constants.isEmpty, symbolSlots: max(1, plan.symbols.count),
            workspaceBytes: workspace, alignment: plan.workspaceAlignment, buffers: buffers, steps: stepViews)
    }
}

/// The mustache templates of generated sources (plugin-runtime/templates/*.mustache): whole files
/// (`<file>.mustache`) and the partials they include (`{{> launch}}`). A partial named `inline_*`
/// is used inside a line: the newline that ends its file is not part of it.
public struct TemplateSet: @unchecked Sendable {
    let library: MustacheLibrary

    public init(directory: URL) throws(TPATError) {
        var templates: [String: MustacheTemplate] = [:]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for file in files where file.hasSuffix(".mustache") {
            let name = String(file.dropLast(".mustache".count))
            do {
                var text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                if name.hasPrefix("inline_"), text.hasSuffix("\n") { text.removeLast() }
                // On a line of its own, so that a tag opening the file can stand alone (mustache's standalone lines).
                templates[name] = try MustacheTemplate(string: "{{%CONTENT_TYPE:TEXT}}\n" + text)
            } catch {
                throw TPATError(.io, "template \(file) is invalid: \(error)")
            }
        }
        guard !templates.isEmpty else { throw TPATError(.io, "no templates in \(directory.path)") }
        library = MustacheLibrary(templates: templates)
    }

    /// Renders template `name` over a view model (a struct or dictionary, read by name).
    public func render(_ name: String, _ context: Any) throws(TPATError) -> String {
        guard let text = library.render(context, withTemplate: name) else {
            throw TPATError(.io, "no template named \(name)")
        }
        return text
    }
}
