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
    /// The stable reason code of a bridge failure (`unsupported_attribute`, `tvm_error`, ...), if any.
    public var code: String?

    public init(_ kind: Kind, _ message: String, code: String? = nil) {
        self.kind = kind
        self.code = code
        // Keep it to one line whatever the cause said.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    public var description: String { message }
}
