import ArgumentParser
import Foundation
import TPATCore

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, node by node, what TensorRT's ONNX parser (or QNN's HTP backend) takes and which nodes need a plugin.")

    @Argument(help: "The ONNX model.") var model: String
    @Flag(help: "Print the report as JSON (schemas/inspect-report.schema.json).") var json = false
    @Flag(help: "Also ask an installed TensorRT or TensorRT-RTX ONNX parser which nodes fail to import.") var probe = false
    @Option(
        help:
            "Whose verdicts: tensorrt (TensorRT's parser or its rule table, see --trt) or qnn (QNN's HTP backend, asked through ONNX Runtime's QNN provider)."
    ) var backend: VendorBackend = .tensorrt
    @OptionGroup var rules: RulesOption
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            _ = log.bootstrap()
            // Load first: bad input fails fast, before Python starts.
            let loaded = try ONNXModel.load(path: model)
            let bridge = try PythonBridge.locate()
            let report: InspectReport
            switch backend {
            case .tensorrt:
                let inspector = Inspector(bridge: bridge, rules: try await rules.rules(bridge: bridge))
                report = try await inspector.inspect(model: loaded, modelPath: model, probe: probe)
            case .qnn:
                guard !probe else { throw TPATError(.input, "--probe asks TensorRT's parser; --backend qnn always asks QNN's backend") }
                report = try await QNNInspector(bridge: bridge).inspect(model: loaded, modelPath: model)
            }
            if json {
                FileHandle.standardOutput.write(try report.json())
                print("")
            } else {
                print(report.text(), terminator: "")
            }
        }
    }
}
