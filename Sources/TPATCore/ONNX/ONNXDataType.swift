/// ONNX tensor element types (TensorProto.DataType), with the short names TensorRT's docs use.
public enum ONNXDataType: Int32, Codable, Sendable, CaseIterable {
    case undefined = 0, float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7
    case string = 8, bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13
    case complex64 = 14, complex128 = 15, bfloat16 = 16
    case float8e4m3fn = 17, float8e4m3fnuz = 18, float8e5m2 = 19, float8e5m2fnuz = 20
    case uint4 = 21, int4 = 22, float4e2m1 = 23, float8e8m0 = 24, uint2 = 25, int2 = 26

    /// The name TensorRT's operator table uses (FP32, INT64, ...).
    public var tensorRTName: String {
        switch self {
        case .float: "FP32"
        case .float16: "FP16"
        case .bfloat16: "BF16"
        case .double: "DOUBLE"
        case .int8: "INT8"
        case .uint8: "UINT8"
        case .int16: "INT16"
        case .uint16: "UINT16"
        case .int32: "INT32"
        case .uint32: "UINT32"
        case .int64: "INT64"
        case .uint64: "UINT64"
        case .bool: "BOOL"
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0: "FP8"
        case .int4: "INT4"
        case .uint4: "UINT4"
        case .float4e2m1: "FP4"
        case .int2: "INT2"
        case .uint2: "UINT2"
        case .string: "STRING"
        case .complex64: "COMPLEX64"
        case .complex128: "COMPLEX128"
        case .undefined: "UNDEFINED"
        }
    }

    /// Lower-case name as used in the bridge JSON and in kernel plans ("float32", "int64", ...).
    public var name: String {
        switch self {
        case .float: "float32"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .double: "float64"
        default: String(describing: self)
        }
    }

    /// Bytes per element, nil for sub-byte and variable-size types.
    public var byteSize: Int? {
        switch self {
        case .bool, .int8, .uint8, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0: 1
        case .float16, .bfloat16, .int16, .uint16: 2
        case .float, .int32, .uint32: 4
        case .double, .int64, .uint64, .complex64: 8
        case .complex128: 16
        default: nil
        }
    }
}
