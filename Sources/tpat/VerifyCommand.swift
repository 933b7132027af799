import ArgumentParser
import Foundation
import TPATCore

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "On a GPU: run every plugin's check program on its reference data (and the C++ plugin's runtime path).")

    @Argument(help: "Folders `tpat generate` wrote (built with `tpat build`).") var outs: [String]
    @Flag(help: "Also run every check under compute-sanitizer memcheck and racecheck.") var sanitize = false
    @OptionGroup var log: LogOptions

    func run() async throws {
        try await guarded { () async throws(TPATError) in
            _ = log.bootstrap()
            let verbose = log.verbose
            guard !outs.isEmpty else { throw TPATError(.input, "name at least one folder") }
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
            if let usage { throw usage }
            if !allOK { throw TPATError(.failed, "verification failed") }
        }
    }
}
