import ArgumentParser
import Foundation
import TPATCore

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "On a GPU: run every plugin's check program on its reference data (and the C++ plugin's runtime path).")

    @Argument(help: "Folders `tpat generate` wrote (built with `tpat build`).") var outs: [String]
    @Flag(help: "Also run every check under compute-sanitizer memcheck and racecheck.") var sanitize = false
    @Flag(help: "Print the check programs' full output.") var verbose = false

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            guard !outs.isEmpty else { throw TPATError(.input, "name at least one folder") }
            var allOK = true
            for out in outs {
                print("== \(out)")
                let report: Verifier.Report
                do throws(TPATError) {
                    report = try await Verifier().verify(out: URL(fileURLWithPath: out), sanitize: sanitize)
                } catch {
                    print("  FAIL  \(SafeText.terminal(error.message))")
                    allOK = false
                    continue
                }
                for p in report.plugins {
                    let parts = p.runs.map { r in
                        r.tool == "tpat_check" ? "\(r.passed) passed, \(r.failed) failed" : "\(r.tool) \(r.sanitizerErrors.map { "\($0) errors" } ?? "exit \(r.status)")"
                    }
                    print("  \(p.ok ? "PASS" : "FAIL")  \(p.plugin): \(parts.joined(separator: "; "))")
                    for r in p.runs where verbose || !r.ok {
                        for line in r.output.split(separator: "\n") where verbose || line.contains("FAIL") || line.contains("error") || line.contains("ERROR") {
                            print("        \(SafeText.terminal(String(line)))")
                        }
                    }
                }
                if let rt = report.pluginRuntime {
                    print("  \(rt.ok ? "PASS" : "FAIL")  C++ plugin runtime path (libtpat_plugins.so): \(rt.passed) passed, \(rt.failed) failed")
                } else {
                    print("  skip  C++ plugin runtime path: libtpat_plugins.so / tpat_plugin_check not built (no TensorRT headers)")
                }
                allOK = allOK && report.ok
            }
            if !allOK { throw TPATError(.plan, "verification failed") }
        }
    }
}
