import ArgumentParser
import TPATCore

extension VendorBackend: ExpressibleByArgument {}

/// The nodes QNN's HTP backend refuses, asked of the real backend (`generate --auto --backend qnn`).
func qnnRefusedNodes(model: ONNXModel, modelPath: String) async throws(TPATError) -> [Int] {
    let report = try await QNNInspector(bridge: try PythonBridge.locate()).inspect(model: model, modelPath: modelPath)
    print("Selected by \(report.rulesSource):")
    for n in report.nodes where n.verdict == .unsupported { print("  \(n.name) (\(n.opType)): [\(n.rule ?? "-")] \(n.reason)") }
    print(
        "note: the plugins generated for them are TensorRT IPluginV3 plugins with CUDA kernels; QNN op packages cannot be built here (docs/qnn.md)"
    )
    return report.nodes.filter { $0.verdict == .unsupported }.map(\.index)
}
