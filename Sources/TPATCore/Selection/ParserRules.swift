import Foundation

/// TensorRT's ONNX-parser support table as data (Resources/tensorrt10-onnx-operators.json,
/// transcribed from onnx/onnx-tensorrt docs/operators.md for TensorRT 10.x; schema in
/// schemas/trt-rules.schema.json).
public struct ParserRules: Codable, Sendable {
    public struct Source: Codable, Sendable {
        public var repository: String
        public var path: String
        public var commit: String
        public var tensorrt: String
    }

    public enum Status: String, Codable, Sendable { case supported, unsupported }

    /// One restriction of an op. `kind` picks the check; the other fields are its parameters.
    public struct Restriction: Codable, Sendable {
        public enum Kind: String, Codable, Sendable {
            case attributeIn, attributeAllOnes, attributeAbsent
            case inputConstant, inputConstantBelow, inputConstantAllZero
            case inputRankIn, inputStaticShape, outputUnused, note
        }
        public var id: String
        public var kind: Kind
        public var text: String
        public var attribute: String?
        public var allowed: [ScalarValue]?
        public var `default`: ScalarValue?
        public var input: Int?
        public var output: Int?
        public var limit: Double?
        public var ranks: [Int]?
    }

    public struct OpRule: Codable, Sendable {
        public var status: Status
        public var reason: String?
        public var types: [String]?
        public var typeInputs: [Int]?
        public var typeOutputs: [Int]?
        public var restrictions: [Restriction]?
    }

    public var source: Source
    public var maxOpset: Int
    public var ops: [String: OpRule]

    static let resourceName = "tensorrt10-onnx-operators.json"

    /// The rules shipped with TPAT: the build's resource bundle beside the executable, else the
    /// source tree's copy (a statically linked binary carried to another machine, tests).
    public static func bundled() throws(TPATError) -> ParserRules {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var candidates = [
            exe.appendingPathComponent("tpat_TPATCore.resources/\(resourceName)"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/\(resourceName)"),
        ]
        if let home = ProcessInfo.processInfo.environment["TPAT_HOME"] {
            candidates.append(URL(fileURLWithPath: home).appendingPathComponent("Sources/TPATCore/Selection/Resources/\(resourceName)"))
        }
        guard let url = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw TPATError(.io, "TensorRT rules (\(resourceName)) not found beside the executable or in the source tree (set TPAT_HOME)")
        }
        do { return try JSONDecoder().decode(ParserRules.self, from: Data(contentsOf: url)) } catch {
            throw TPATError(.io, "TensorRT rules resource is unreadable: \(error)")
        }
    }

    public var sourceDescription: String {
        "\(source.repository) \(source.path) @ \(source.commit.prefix(7)) (TensorRT \(source.tensorrt))"
    }
}

/// A string or integer attribute value as written in the rules.
public enum ScalarValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case int(Int64), string(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }

    public var description: String {
        switch self {
        case .int(let i): "\(i)"
        case .string(let s): "\"\(s)\""
        }
    }
}
