import Foundation

/// The one error type the pipeline throws. Every case renders as a single `error: ...` line;
/// the CLI maps its kind to an exit code (`TPATExitCode`).
public struct TPATError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Codable {
        case input  // the user's file or argument is unusable
        case model  // the file is not a valid ONNX model
        case bridge  // the Python bridge failed or answered badly
        case plan  // TVM could not plan a node
        case notImplemented  // a subcommand that is not done yet
        case io  // writing outputs failed
        case failed  // a check or benchmark ran and did not pass
    }
    public var kind: Kind
    public var message: String
    /// Tool output behind the error (e.g. CMake's whole error), shown above the `error:` line.
    public var detail: String
    /// A stable reason code where one is known: the bridge's (`data_dependent_shape`,
    /// `frontend_import_failed`, `tvm_error`, ...) or TPAT's own (docs/generate-report.md).
    public var code: String?

    public init(_ kind: Kind, _ message: String, detail: String = "", code: String? = nil) {
        self.kind = kind
        // Keep it to one line whatever the cause said.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.detail = detail
        self.code = code
    }

    public var description: String { message }

    /// The process exit code this error ends a command with.
    public var exitCode: TPATExitCode { kind == .failed ? .failed : .usage }
}

/// The exit codes of every `tpat` command (README "Exit codes", `tpat --help`).
public enum TPATExitCode: Int32, Sendable, CaseIterable {
    /// Done: every selected node converted (or nothing needed converting), every check passed.
    case done = 0
    /// A check or benchmark ran and failed (`tpat verify`, `tpat bench`).
    case failed = 1
    /// Bad input or usage, or a tool TPAT runs failed: one `error:` line.
    case usage = 2
    /// `tpat generate` converted some selected nodes but not all (or none): what converted is
    /// written, tpat-generate.json gives each other node's reason code.
    case partial = 3

    public var meaning: String {
        switch self {
        case .done: "done (for generate: every selected node converted, or nothing to convert)"
        case .failed: "a check or benchmark failed (verify, bench)"
        case .usage: "bad input or usage, or a tool TPAT runs failed (one `error:` line)"
        case .partial: "generate left some selected nodes unconverted (reasons: tpat-generate.json)"
        }
    }

    /// The table as `--help` and the README show it.
    public static var helpText: String {
        "Exit codes:\n" + allCases.map { "  \($0.rawValue)  \($0.meaning)" }.joined(separator: "\n")
    }
}
