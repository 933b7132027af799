import ArgumentParser
import Foundation
import TPATCore

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "On a GPU: run every plugin's check program on its reference data (and the C++ plugin's runtime path).")

    @Argument(help: "Folders `tpat generate` wrote (built with `tpat build`).") var outs: [String]
    @Flag(help: "Also run every check under compute-sanitizer memcheck and racecheck.") var sanitize = false
    @Flag(
        help:
            "Whole model: OUT's rewritten model (plugins through their launchers, every other node through ONNX Runtime) against ONNX Runtime on the original; names the first tensor that differs."
    ) var model = false
    @Flag(help: "With --model: run each plugin through the LLVM build of its plan on the CPU instead of its launcher (no GPU).") var cpu =
        false
    @Option(help: "With --model: an .npz holding the model's inputs (default: random inputs).") var inputs: String?
    @Option(help: "With --model: the original model (default: the path recorded in tpat-generate.json).") var original: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            _ = log.bootstrap()
            let verbose = log.verbose
            guard !outs.isEmpty else { throw TPATError(.input, "name at least one folder") }
            if model {
                try await verifyModels()
                return
            }
            var allOK = true
            var usage: TPATError?
            for out in outs {
                print("== \(out)")
                let report: Verifier.Report
                do throws(TPATError) {
                    report = try await Verifier().verify(out: URL(fileURLWithPath: out), sanitize: sanitize)
                } catch {
                    // Not a check that failed: the folder is unusable (exit 2 below).
                    print("  FAIL  \(SafeText.terminal(error.message))")
                    usage = usage ?? error
                    continue
                }
                for p in report.plugins {
                    let parts = p.runs.map { r in
                        r.tool == "tpat_check"
                            ? "\(r.passed) passed, \(r.failed) failed"
                            : "\(r.tool) \(r.sanitizerErrors.map { "\($0) errors" } ?? "exit \(r.status)")"
                    }
                    print("  \(p.ok ? "PASS" : "FAIL")  \(p.plugin): \(parts.joined(separator: "; "))")
                    for r in p.runs where verbose || !r.ok {
                        for line in r.output.split(separator: "\n")
                        where verbose || line.contains("FAIL") || line.contains("error") || line.contains("ERROR") {
                            print("        \(SafeText.terminal(String(line)))")
                        }
                    }
                }
                if let rt = report.pluginRuntime {
                    print(
                        "  \(rt.ok ? "PASS" : "FAIL")  C++ plugin runtime path (libtpat_plugins.so): \(rt.passed) passed, \(rt.failed) failed"
                    )
                } else {
                    print("  skip  C++ plugin runtime path: libtpat_plugins.so / tpat_plugin_check not built (no TensorRT headers)")
                }
                allOK = allOK && report.ok
            }
            if let usage { throw usage }
            if !allOK { throw TPATError(.failed, "verification failed") }
        }
    }

    /// `--model`: bridge command `verify_model` (python/tpat_bridge/tools/verify_model.py) per folder.
    func verifyModels() async throws(TPATError) {
        struct Request: Encodable {
            var command = "verify_model"; var out_dir: String; var cpu: Bool; var inputs: String?; var original: String?
        }
        struct Answer: Decodable {
            struct Output: Decodable { var name: String; var ok: Bool; var maxError: Double }
            struct Mismatch: Decodable { var tensor: String; var node: String; var opType: String; var plugin: Bool; var maxError: Double }
            var ok: Bool; var mode: String; var pluginNodes: Int; var ortSegments: Int; var tensorsCompared: Int
            var firstMismatch: Mismatch?; var outputs: [Output]
        }
        let bridge = try PythonBridge.locate()
        var allOK = true
        for out in outs {
            print("== \(SafeText.terminal(out))")
            let a = try await bridge.call(
                Request(out_dir: URL(fileURLWithPath: out).path, cpu: cpu, inputs: inputs, original: original), as: Answer.self)
            print(
                "  \(a.mode): \(a.pluginNodes) plugin nodes, \(a.ortSegments) ONNX Runtime segments, \(a.tensorsCompared) tensors compared")
            for o in a.outputs {
                print("  \(o.ok ? "PASS" : "FAIL")  output \(SafeText.terminal(o.name)): max error \(String(format: "%.3g", o.maxError))")
            }
            if let m = a.firstMismatch {
                print(
                    "  first tensor that differs: \(SafeText.terminal(m.tensor)) from node \(SafeText.terminal(m.node)) (\(SafeText.terminal(m.opType))\(m.plugin ? ", a TPAT plugin" : "")), max error \(String(format: "%.3g", m.maxError))"
                )
            }
            allOK = allOK && a.ok
        }
        if !allOK { throw TPATError(.failed, "the rewritten model differs from the original") }
    }
}
