import ArgumentParser
import Foundation
import TPATCore

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, node by node, what TensorRT's ONNX parser imports and which nodes need a plugin.")

    @Argument(help: "The ONNX model.") var model: String
    @Flag(help: "Print the report as JSON (schemas/inspect-report.schema.json).") var json = false
    @Flag(help: "Also ask an installed TensorRT or TensorRT-RTX ONNX parser which nodes fail to import.") var probe = false
    @OptionGroup var rules: RulesOption

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            // Load first: bad input fails fast, before Python starts.
            let loaded = try ONNXModel.load(path: model)
            let bridge = try PythonBridge.locate()
            let inspector = Inspector(bridge: bridge, rules: try await rules.rules(bridge: bridge))
            let report = try await inspector.inspect(model: loaded, modelPath: model, probe: probe)
            if json {
                FileHandle.standardOutput.write(try report.json())
                print("")
            } else {
                print(report.text(), terminator: "")
            }
        }
    }
}
