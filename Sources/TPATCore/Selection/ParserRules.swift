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

    /// The rules shipped with TPAT.
    public static func bundled() throws(TPATError) -> ParserRules {
        guard let url = Bundle.module.url(forResource: "tensorrt10-onnx-operators", withExtension: "json") else {
            throw TPATError(.io, "TensorRT rules resource is missing from the build")
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
