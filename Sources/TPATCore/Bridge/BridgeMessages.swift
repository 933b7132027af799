import Foundation

/// Requests and results of the bridge, mirrored one to one from schemas/bridge.schema.json.
public enum BridgeMessages {
    public struct ModelRequest: Codable, Sendable {
        public var command: String
        public var modelPath: String
        public var dataProp: Bool?
        enum CodingKeys: String, CodingKey { case command, modelPath = "model_path", dataProp = "data_prop" }
        public static func inferShapes(_ path: String) -> ModelRequest { .init(command: "infer_shapes", modelPath: path, dataProp: true) }
        public static func probe(_ path: String) -> ModelRequest { .init(command: "probe", modelPath: path, dataProp: nil) }
    }

    /// fold_ifs (python/tpat_bridge/planning/fold_if.py): If nodes with a condition known from
    /// constants and static shapes inlined; the folded model is written to `outPath` when any folded.
    public struct FoldIfsRequest: Codable, Sendable {
        public var command = "fold_ifs"
        public var modelPath: String
        public var outPath: String
        enum CodingKeys: String, CodingKey { case command, modelPath = "model_path", outPath = "out_path" }
        public init(modelPath: String, outPath: String) { self.modelPath = modelPath; self.outPath = outPath }
    }

    public struct FoldIfsResult: Codable, Sendable {
        public struct Folded: Codable, Sendable {
            public var node: String
            public var branch: String
            public var nodes: Int
            public var condition: Bool
        }
        public struct DataDependent: Codable, Sendable { public var node: String; public var op: String }
        public struct Kept: Codable, Sendable {
            public var node: String
            public var dependsOn: String
            public var dataDependent: [DataDependent]
            enum CodingKeys: String, CodingKey { case node, dependsOn = "depends_on", dataDependent = "data_dependent" }
        }
        public var folded: [Folded]
        public var kept: [Kept]
        public var written: Bool
    }

    public struct VersionRequest: Codable, Sendable {
        public var command = "version"
        public init() {}
    }

    public struct Versions: Codable, Sendable, Equatable {
        public var python: String
        public var onnx: String?
        public var onnxruntime: String?
        public var tvm: String?
        public var tvmFFI: String?
        public var tensorrt: String?
        public var tensorrtRTX: String?
        enum CodingKeys: String, CodingKey {
            case python, onnx, onnxruntime, tvm, tvmFFI = "tvm_ffi", tensorrt, tensorrtRTX = "tensorrt_rtx"
        }
    }

    /// One dimension as JSON: {"value": n}, {"param": "N"} or {}.
    public struct Dim: Codable, Sendable, Equatable {
        public var value: Int64?
        public var param: String?
        public var dimension: Dimension {
            if let value { return .fixed(value) }
            if let param { return .symbol(param) }
            return .unknown
        }
    }

    public struct Tensor: Codable, Sendable, Equatable {
        public var name: String
        public var elemType: Int32
        public var dtype: String
        public var shape: [Dim]?
        enum CodingKeys: String, CodingKey { case name, elemType = "elem_type", dtype, shape }

        public var info: TensorInfo {
            TensorInfo(name: name, dataType: ONNXDataType(rawValue: elemType) ?? .undefined, shape: shape?.map(\.dimension))
        }
    }

    public struct ShapeResult: Codable, Sendable {
        public var tensors: [Tensor]
        public var warnings: [String]
        /// The ONNX checker's first complaint, nil when it accepts the model.
        public var checker: String?
        /// Values typed sequence, optional or map.
        public var nonTensor: [NonTensor]?
        enum CodingKeys: String, CodingKey { case tensors, warnings, checker, nonTensor = "non_tensor" }
    }

    public struct NonTensor: Codable, Sendable, Equatable {
        public var name: String
        public var kind: String
    }

    public struct ProbeNode: Codable, Sendable, Equatable {
        public var index: Int
        public var node: String
        public var opType: String
        public var imported: Bool
        public var error: String?
        enum CodingKeys: String, CodingKey { case index, node, opType = "op_type", imported, error }
    }

    public struct ProbeResult: Codable, Sendable {
        public var parser: String?
        public var nodes: [ProbeNode]
        public var note: String?
        /// "whole-model", "per-node" or "whole-model+per-node"; how many parses it took.
        public var mode: String?
        public var parses: Int?
    }

    public struct ValidateRequest: Codable, Sendable {
        public var command = "validate"
        public var schema: String
        public var definition: String?
        public var instance: JSONValue
        public init(schema: String, definition: String?, instance: JSONValue) {
            self.schema = schema; self.definition = definition; self.instance = instance
        }
    }

    public struct ValidateResult: Codable, Sendable {
        public var valid: Bool
        public var errors: [String]
    }
}

/// Any JSON value, for passing Swift-encoded documents through the bridge unchanged.
public indirect enum JSONValue: Codable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Re-reads any Encodable value as JSON.
    public static func from<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }
}
