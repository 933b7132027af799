import ArgumentParser
import TPATCore

/// `--trt 10|11|rtx`: which TensorRT ONNX parser's rules to use (default: the installed parser's
/// flavour, else 11).
struct RulesOption: ParsableArguments {
    @Option(
        name: .customLong("trt"),
        help: "TensorRT flavour whose parser rules apply: 10, 11 or rtx (default: the installed parser's, else 11).")
    var trt: String?

    func rules(bridge: PythonBridge) async throws(TPATError) -> ParserRules {
        if let trt {
            guard let f = ParserRules.Flavour(rawValue: trt.lowercased()) else {
                throw TPATError(.input, "unknown --trt \(trt.debugDescription) (use 10, 11 or rtx)")
            }
            return try ParserRules.bundled(f)
        }
        let versions = try? await bridge.call(BridgeMessages.VersionRequest(), as: BridgeMessages.Versions.self)
        return try ParserRules.bundled(.installed(versions))
    }
}
