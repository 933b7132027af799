import Foundation

/// The one error type the pipeline throws. Every case renders as a single `error: ...` line;
/// the CLI maps it to exit code 2.
public struct TPATError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Codable {
        case input          // the user's file or argument is unusable
        case model          // the file is not a valid ONNX model
        case bridge         // the Python bridge failed or answered badly
        case plan           // TVM could not plan a node
        case notImplemented // a subcommand that is not done yet
        case io             // writing outputs failed
    }
    public var kind: Kind
    public var message: String
    /// Tool output behind the error (e.g. CMake's whole error), shown above the `error:` line.
    public var detail: String

    public init(_ kind: Kind, _ message: String, detail: String = "") {
        self.kind = kind
        // Keep it to one line whatever the cause said.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.detail = detail
    }

    public var description: String { message }
}
