/// One dimension of a tensor shape: a known size, a named symbol, or unknown.
public enum Dimension: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int64)
    case symbol(String)
    case unknown

    public var description: String {
        switch self {
        case .fixed(let v): "\(v)"
        case .symbol(let s): s
        case .unknown: "?"
        }
    }
}

/// Element type and shape of one tensor, as far as shape inference knows them.
/// `shape == nil` means even the rank is unknown.
public struct TensorInfo: Hashable, Sendable {
    public var name: String
    public var dataType: ONNXDataType
    public var shape: [Dimension]?

    public init(name: String, dataType: ONNXDataType, shape: [Dimension]?) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
    }

    public var rank: Int? { shape?.count }
    public var isStatic: Bool { shape?.allSatisfy { if case .fixed = $0 { true } else { false } } ?? false }

    /// "float32[N,3,224,224]"
    public var signature: String {
        let dims = shape.map { "[" + $0.map(\.description).joined(separator: ",") + "]" } ?? "[?]"
        return dataType.name + dims
    }
}

extension TensorInfo {
    /// Reads type and shape from an ONNX ValueInfoProto (tensor types only).
    init?(_ valueInfo: Onnx_ValueInfoProto) {
        guard case .tensorType(let t)? = valueInfo.type.value else { return nil }
        let dtype = ONNXDataType(rawValue: t.elemType) ?? .undefined
        var dims: [Dimension]? = nil
        if t.hasShape {
            dims = t.shape.dim.map { d in
                switch d.value {
                case .dimValue(let v): .fixed(v)
                case .dimParam(let p) where !p.isEmpty: .symbol(p)
                default: .unknown
                }
            }
        }
        self.init(name: valueInfo.name, dataType: dtype, shape: dims)
    }

    /// Type and shape of an initializer.
    init(_ tensor: Onnx_TensorProto) {
        self.init(
            name: tensor.name, dataType: ONNXDataType(rawValue: tensor.dataType) ?? .undefined,
            shape: tensor.dims.map { .fixed($0) })
    }
}
